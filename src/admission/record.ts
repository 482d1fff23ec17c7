// One log line and one metric sample per admission, from the review's summary.
import type { ReviewOutcome } from './review.js';
import type { Logger } from '../observability/logger.js';
import type { AdmissionResult, Metrics } from '../observability/metrics.js';

/** Submitters choose names and images: a log field keeps at most this many characters. */
const LOG_FIELD_LIMIT = 256;

function clip(value: string, limit = LOG_FIELD_LIMIT): string {
  return value.length <= limit ? value : `${value.slice(0, limit)}... (${value.length} characters)`;
}

type Reviewed = Extract<ReviewOutcome, { ok: true }>;

function resultOf({ kind, summary }: Reviewed): AdmissionResult {
  if (kind === 'allowed') return 'skipped';
  if (kind === 'denied') return 'denied';
  return summary.patch.length > 0 ? 'mutated' : 'unchanged';
}

/** The log line's fields: every submitter-chosen string clipped. */
function logFields({ summary }: Reviewed, result: AdmissionResult, seconds: number) {
  return {
    uid: clip(summary.uid),
    namespace: clip(summary.namespace),
    pod: clip(summary.name),
    operation: clip(summary.operation),
    dryRun: summary.dryRun,
    result,
    route: summary.decision?.route ?? '',
    reason: summary.decision?.rule ?? '',
    ...(summary.decision && { detail: clip(summary.decision.detail), bucket: summary.decision.bucket }),
    ...(summary.skipped && { skipped: clip(summary.skipped) }),
    patchOps: summary.patch.length,
    warnings: summary.warnings.length,
    config: summary.configHash,
    durationMs: Math.round(seconds * 1e6) / 1e3,
  };
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
  const result = resultOf(outcome);
  const fields = logFields(outcome, result, seconds);
  metrics.admissions.inc({ route: fields.route, reason: fields.reason, result });
  metrics.admissionDuration.observe({ result }, seconds);
  if (outcome.kind === 'denied')
    logger.error(
      { ...fields, denied: clip(outcome.summary.denied ?? '', 4 * LOG_FIELD_LIMIT) },
      'refused a build pod',
    );
  else if (outcome.kind === 'allowed') logger.debug(fields, 'admission');
  else logger.info(fields, 'admission');
}
