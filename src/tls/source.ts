// The serving certificate, followed on disk like cert-manager's file source: swapped only when the
// bytes change and the new pair checks out (key matches, valid now); a refused pair leaves the old
// one serving and is counted.
import { readFile } from 'node:fs/promises';
import { pollFiles, type FilePoller } from '../files/poll.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { loadServingCert, type ServingCert } from './serving.js';

export class ServingCertSource {
  private poller?: FilePoller;

  private constructor(
    private cert: ServingCert,
    private readonly files: { cert: string; key: string },
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    metrics.certificateExpiry.set(cert.notAfter.getTime() / 1000);
  }

  static async load(
    files: { cert: string; key: string },
    logger: Logger,
    metrics: Metrics,
  ): Promise<ServingCertSource> {
    return new ServingCertSource(
      loadServingCert(await readFile(files.cert, 'utf8'), await readFile(files.key, 'utf8')),
      files,
      logger,
      metrics,
    );
  }

  current(): ServingCert {
    return this.cert;
  }

  /** Why the certificate in use cannot serve (it expired since it was loaded), if it cannot. */
  problems(): string[] {
    return this.cert.notAfter.getTime() <= Date.now()
      ? [`serving certificate expired at ${this.cert.notAfter.toISOString()}`]
      : [];
  }

  /** Polls the pair every `pollMs`, calling `onSwap` with each new pair that checks out. */
  watch(pollMs: number, onSwap: (cert: ServingCert) => void): void {
    this.poller = pollFiles(
      [this.files.cert, this.files.key],
      pollMs,
      ([cert, key]) => this.offer(cert!.toString('utf8'), key!.toString('utf8'), onSwap),
      (error) =>
        this.logger.warn(
          { err: error.message },
          'cannot read the serving certificate; keeping the one in use',
        ),
      [Buffer.from(this.cert.cert), Buffer.from(this.cert.key)],
    );
  }

  stop(): void {
    this.poller?.stop();
  }

  private offer(certPem: string, keyPem: string, onSwap: (cert: ServingCert) => void) {
    let next: ServingCert;
    try {
      next = loadServingCert(certPem, keyPem);
    } catch (error) {
      this.metrics.certificateReloads.inc({ result: 'failure' });
      this.logger.error(
        { err: (error as Error).message, cert: this.files.cert },
        'new serving certificate refused; the old one stays in use',
      );
      return;
    }
    onSwap(next);
    this.cert = next;
    this.metrics.certificateReloads.inc({ result: 'success' });
    this.metrics.certificateExpiry.set(next.notAfter.getTime() / 1000);
    this.logger.info(
      { serial: next.serialNumber, notAfter: next.notAfter.toISOString() },
      'serving certificate reloaded',
    );
  }
}
