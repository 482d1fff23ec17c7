// Connections that cost memory without sending a request: node gives each TCP connection its TLS
// state (tens of KiB) at accept, and closes neither a handshake that never ends nor a connection
// that never sends a request on its own.
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface ConnectionLimits {
  /** A connection that has sent no request this long after it was accepted is closed. */
  firstRequestMs: number;
  /** At most this many open connections; a new one evicts the oldest that never sent a request. */
  maxConnections: number;
}

const peer = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;

export function limitConnections(server: Server, limits: ConnectionLimits): void {
  /** Accepted sockets that have not sent a request yet, oldest first, by peer address and port. */
  const fresh = new Map<string, { socket: Socket; timer: NodeJS.Timeout }>();
  let open = 0;
  server.on('connection', (socket: Socket) => {
    const key = peer(socket);
    open++;
    const timer = setTimeout(() => socket.destroy(), limits.firstRequestMs);
    timer.unref();
    fresh.set(key, { socket, timer });
    socket.once('close', () => {
      open--;
      clearTimeout(timer);
      if (fresh.get(key)?.socket === socket) fresh.delete(key);
    });
    if (open > limits.maxConnections) (fresh.values().next().value?.socket ?? socket).destroy();
  });
  // The TLS socket has the same peer as the TCP socket it wraps; its first decrypted bytes mean a
  // request has begun, and the connection is no longer a candidate for eviction.
  server.on('secureConnection', (socket: TLSSocket) => {
    const key = peer(socket);
    socket.once('data', () => {
      const entry = fresh.get(key);
      if (!entry) return;
      clearTimeout(entry.timer);
      fresh.delete(key);
    });
  });
}
