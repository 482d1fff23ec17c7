// The config in force, followed on disk: a valid change applies to the next request, an invalid
// one is refused with a log line and a metric while the last good config stays (docs/configuration.md).
import { readFile } from 'node:fs/promises';
import { pollFiles, type FilePoller } from '../files/poll.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Policy } from './policy.js';
import { loadPolicy, parseConfig } from './load.js';

export class PolicyWatcher {
  private poller?: FilePoller;

  private constructor(
    private policy: Policy,
    private readonly path: string | undefined,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    metrics.configInfo.set({ hash: policy.hash }, 1);
  }

  /** Loads the config (throws ConfigError when invalid) and, given a file, polls it every `pollMs`. */
  static async start(
    path: string | undefined,
    pollMs: number,
    logger: Logger,
    metrics: Metrics,
    onChange: (policy: Policy) => void,
  ): Promise<PolicyWatcher> {
    const watcher = new PolicyWatcher(await loadPolicy(path), path, logger, metrics);
    if (path) {
      watcher.poller = pollFiles(
        [path],
        pollMs,
        ([text]) => watcher.apply(text!.toString('utf8'), onChange),
        (error) =>
          logger.warn(
            { config: path, err: error.message },
            'cannot read the config file; keeping the config in force',
          ),
        [await readFile(path)],
      );
    }
    return watcher;
  }

  current(): Policy {
    return this.policy;
  }

  stop(): void {
    this.poller?.stop();
  }

  private apply(text: string, onChange: (policy: Policy) => void) {
    const result = parseConfig(text);
    if (!result.ok) {
      this.metrics.configReloads.inc({ result: 'failure' });
      this.logger.error(
        { config: this.path, problems: result.problems, inForce: this.policy.hash },
        'config change rejected; the last good config stays in force',
      );
      return;
    }
    this.metrics.configReloads.inc({ result: 'success' });
    if (result.policy.hash === this.policy.hash) return;
    this.metrics.configInfo.reset();
    this.metrics.configInfo.set({ hash: result.policy.hash }, 1);
    this.logger.info(
      { config: this.path, from: this.policy.hash, to: result.policy.hash },
      'config reloaded',
    );
    this.policy = result.policy;
    onChange(result.policy);
  }
}
