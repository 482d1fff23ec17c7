// Prometheus metrics on a registry owned by the app (never prom-client's global default registry).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type AdmissionResult = 'mutated' | 'unchanged' | 'skipped' | 'denied' | 'invalid';

export interface Metrics {
  registry: Registry;
  admissions: Counter<'route' | 'reason' | 'result'>;
  admissionDuration: Histogram<'result'>;
  configReloads: Counter<'result'>;
  configInfo: Gauge<'hash'>;
  certificateExpiry: Gauge;
  certificateReloads: Counter<'result'>;
  imageCache: Counter<'result'>;
  imageLookupDuration: Histogram<'registry' | 'result'>;
  imageRegistryRequests: Counter<'registry'>;
  contentScans: Counter<'result'>;
  contentScanBytes: Counter;
  contentScanDuration: Histogram<'result'>;
  contentQueueDepth: Gauge;
  contentQueueDropped: Counter;
  contentVerdicts: Gauge;
  contentLayerCache: Counter<'result'>;
  contentDigestMismatches: Counter;
  contentScanRateLimited: Counter<'by'>;
  learnedFindings: Counter<'class' | 'route'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kata_admission_' });
  return {
    registry,
    admissions: new Counter({
      name: 'kata_admission_requests_total',
      help: 'Admission requests by route, reason and result (mutated, unchanged, skipped, denied, invalid).',
      labelNames: ['route', 'reason', 'result'],
      registers: [registry],
    }),
    admissionDuration: new Histogram({
      name: 'kata_admission_duration_seconds',
      help: 'Time from request body received to response ready.',
      labelNames: ['result'],
      // The engine works in tens of microseconds; the top buckets catch registry lookups, up to the
      // webhook timeout (5 s) so an alert can see p99 approach it.
      buckets: [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
      ],
      registers: [registry],
    }),
    configReloads: new Counter({
      name: 'kata_admission_config_reloads_total',
      help: 'Config file changes applied (success) or rejected (failure; the last good config stays).',
      labelNames: ['result'],
      registers: [registry],
    }),
    configInfo: new Gauge({
      name: 'kata_admission_config_info',
      help: 'The config in force: 1 for its hash.',
      labelNames: ['hash'],
      registers: [registry],
    }),
    certificateExpiry: new Gauge({
      name: 'kata_admission_certificate_expiry_timestamp_seconds',
      help: 'When the serving certificate in use expires (Unix time).',
      registers: [registry],
    }),
    certificateReloads: new Counter({
      name: 'kata_admission_certificate_reloads_total',
      help: 'Serving certificate changes loaded (success) or refused (failure; the old pair stays).',
      labelNames: ['result'],
      registers: [registry],
    }),
    imageCache: new Counter({
      name: 'kata_admission_image_cache_requests_total',
      help: 'Image verdict cache lookups: hit, miss, or negative (a recent failure remembered).',
      labelNames: ['result'],
      registers: [registry],
    }),
    imageLookupDuration: new Histogram({
      name: 'kata_admission_image_lookup_duration_seconds',
      help: 'Registry lookups (manifest, index, config) by registry and result (ok, error).',
      labelNames: ['registry', 'result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    imageRegistryRequests: new Counter({
      name: 'kata_admission_image_registry_requests_total',
      help: 'HTTP requests sent to registries.',
      labelNames: ['registry'],
      registers: [registry],
    }),
    contentScans: new Counter({
      name: 'kata_admission_content_scans_total',
      help: 'Image content scans by result: a class (ok, 32-bit, legacy-glibc, unknown), stopped (a cap), failed (registry).',
      labelNames: ['result'],
      registers: [registry],
    }),
    contentScanBytes: new Counter({
      name: 'kata_admission_content_scan_bytes_total',
      help: 'Compressed layer bytes read from registries by content scans.',
      registers: [registry],
    }),
    contentScanDuration: new Histogram({
      name: 'kata_admission_content_scan_duration_seconds',
      help: 'Time one image content scan took, by result.',
      labelNames: ['result'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
    contentQueueDepth: new Gauge({
      name: 'kata_admission_content_scan_queue_depth',
      help: 'Images queued or being scanned.',
      registers: [registry],
    }),
    contentQueueDropped: new Counter({
      name: 'kata_admission_content_scan_queue_dropped_total',
      help: 'Scans not queued because the queue was full (the next admission of the image asks again).',
      registers: [registry],
    }),
    contentVerdicts: new Gauge({
      name: 'kata_admission_content_verdicts',
      help: 'Content verdicts this replica knows (its ImageVerdict cache, or its memory).',
      registers: [registry],
    }),
    contentLayerCache: new Counter({
      name: 'kata_admission_content_layer_cache_total',
      help: 'Layer summaries found in the layer cache (hit) or read from the registry (miss).',
      labelNames: ['result'],
      registers: [registry],
    }),
    contentDigestMismatches: new Counter({
      name: 'kata_admission_content_digest_mismatch_total',
      help: 'Manifests and blobs whose bytes did not hash to their digest (lookups and scans; nothing was learned from them).',
      registers: [registry],
    }),
    contentScanRateLimited: new Counter({
      name: 'kata_admission_content_scan_rate_limited_total',
      help: 'New scans not queued because the requesting user or namespace was past its scanRate.',
      labelNames: ['by'],
      registers: [registry],
    }),
    learnedFindings: new Counter({
      name: 'kata_admission_learned_findings_total',
      help: 'Builds that failed in a sandbox as an image of this class does, recorded on their ImageVerdict.',
      labelNames: ['class', 'route'],
      registers: [registry],
    }),
  };
}

/** Image inspection events counted into these metrics. */
export function inspectionMetrics(metrics: Metrics) {
  return {
    cache: (result: 'hit' | 'miss' | 'negative') => metrics.imageCache.inc({ result }),
    lookup: (registry: string, seconds: number, ok: boolean) =>
      metrics.imageLookupDuration.observe({ registry, result: ok ? 'ok' : 'error' }, seconds),
    registryRequest: (registry: string) => metrics.imageRegistryRequests.inc({ registry }),
    mismatch: () => metrics.contentDigestMismatches.inc(),
  };
}

/** Content scanning events counted into these metrics. */
export function contentMetrics(metrics: Metrics) {
  return {
    scanned: (v: { class: string; outcome: string; seconds: number }) => {
      const result = v.outcome === 'scanned' ? v.class : v.outcome;
      metrics.contentScans.inc({ result });
      metrics.contentScanDuration.observe({ result }, v.seconds);
    },
    bytes: (count: number) => metrics.contentScanBytes.inc(count),
    queue: (depth: number) => metrics.contentQueueDepth.set(depth),
    dropped: () => metrics.contentQueueDropped.inc(),
    limited: (by: 'user' | 'namespace') => metrics.contentScanRateLimited.inc({ by }),
    mismatch: () => metrics.contentDigestMismatches.inc(),
    stored: (size: number) => metrics.contentVerdicts.set(size),
    layerCache: (result: 'hit' | 'miss') => metrics.contentLayerCache.inc({ result }),
  };
}
