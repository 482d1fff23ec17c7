// A lean body reader for the admission route: bounded, without buffering what is over the limit.
import type { IncomingMessage } from 'node:http';
import type { ByteBudget } from './budget.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The largest review the API server sends for a pod it could store: etcd refuses objects over
 * 1.5 MiB (its --max-request-bytes default), Go's JSON encoder writes <, > and & as \u003c (6 bytes
 * for 1), and an ephemeral-containers UPDATE carries the pod twice (object and oldObject):
 * 2 x 6 x 1.5 MiB = 18 MiB, plus 1 MiB for the envelope. Anything larger could not be stored anyway;
 * with failurePolicy Fail its 413 rejects the pod.
 */
export const MAX_BODY_BYTES = 19 * 1024 * 1024;

/**
 * The raw body, and the function that gives its bytes back to the shared budget once the answer is
 * sent. A body declared over the limit is refused (413) before it takes any of the budget; one
 * without a declared length reserves the limit.
 */
export async function readBody(
  req: IncomingMessage,
  budget: ByteBudget,
  limit = MAX_BODY_BYTES,
): Promise<{ raw: Buffer; release: () => void }> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) {
    throw new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  }
  const release = await budget.acquire(Number.isInteger(declared) && declared >= 0 ? declared : limit);
  try {
    return { raw: await readWithin(req, limit), release };
  } catch (error) {
    release();
    throw error;
  }
}

/** Reads the body, or fails with a 413 as soon as it passes `limit`, keeping none of the excess. */
function readWithin(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        chunks.length = 0;
        req.resume(); // drain the rest without keeping it
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new HttpError(400, `request body could not be read: ${error.message}`));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
