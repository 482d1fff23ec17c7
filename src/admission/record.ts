// One log line and one metric sample per admission, from the review's summary.
import type { ReviewOutcome } from './review.js';
import type { Logger } from '../observability/logger.js';
import type { AdmissionResult, Metrics } from '../observability/metrics.js';

/** Submitters choose names and images: a log field keeps at most this many characters. */
const LOG_FIELD_LIMIT = 256;

function clip(value: string, limit = LOG_FIELD_LIMIT): string {
  return value.length <= limit ? value : `${value.slice(0, limit)}... (${value.length} characters)`;
}

export function recordAdmission(
  outcome: ReviewOutcome,
  seconds: number,
  logger: Logger,
  metrics: Metrics,
): void {
  if (!outcome.ok) {
    metrics.admissions.inc({ route: '', reason: '', result: 'invalid' });
    metrics.admissionDuration.observe({ result: 'invalid' }, seconds);
    logger.warn({ error: clip(outcome.error, 4 * LOG_FIELD_LIMIT) }, 'rejected an invalid admission request');
    return;
  }
  const { summary } = outcome;
  const result: AdmissionResult =
    outcome.kind === 'allowed'
      ? 'skipped'
      : outcome.kind === 'denied'
        ? 'denied'
        : summary.patch.length > 0
          ? 'mutated'
          : 'unchanged';
  const route = summary.decision?.route ?? '';
  const reason = summary.decision?.rule ?? '';
  metrics.admissions.inc({ route, reason, result });
  metrics.admissionDuration.observe({ result }, seconds);
  const fields = {
    uid: clip(summary.uid),
    namespace: clip(summary.namespace),
    pod: clip(summary.name),
    operation: clip(summary.operation),
    dryRun: summary.dryRun,
    result,
    route,
    reason,
    ...(summary.decision && { detail: clip(summary.decision.detail), bucket: summary.decision.bucket }),
    ...(summary.skipped && { skipped: clip(summary.skipped) }),
    patchOps: summary.patch.length,
    warnings: summary.warnings.length,
    config: summary.configHash,
    durationMs: Math.round(seconds * 1e6) / 1e3,
  };
  switch (outcome.kind) {
    case 'denied':
      logger.error(
        { ...fields, denied: clip(summary.denied ?? '', 4 * LOG_FIELD_LIMIT) },
        'refused a build pod',
      );
      break;
    case 'allowed':
      logger.debug(fields, 'admission');
      break;
    case 'patched':
      logger.info(fields, 'admission');
      break;
  }
}
