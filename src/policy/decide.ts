// The routing decision, docs/routing.md: Decision rules: the rules in order, the first verdict wins.
import { labelsOf, podImages, type Pod } from '../kube/pod.js';
import type { Policy } from './policy.js';
import { RULES } from './rules/index.js';
import type { ImageFacts, Verdict } from './rules/rule.js';

export type { ImageFacts, ImageVerdict } from './rules/rule.js';
export const NO_IMAGE_FACTS: ImageFacts = new Map();

export interface Decision extends Verdict {
  rolloutKey: string;
  bucket: number;
}

export function decide(pod: Pod, policy: Policy, facts: ImageFacts = NO_IMAGE_FACTS): Decision {
  const rolloutKey = rolloutKeyOf(pod, policy);
  const context = {
    pod,
    policy,
    facts,
    labels: labelsOf(pod),
    images: podImages(pod),
    rolloutKey,
    bucket: policy.bucketOf(rolloutKey),
  };
  for (const rule of RULES) {
    const verdict = rule(context);
    if (verdict) return { ...verdict, rolloutKey, bucket: context.bucket };
  }
  throw new Error('no routing rule applied'); // unreachable: the default rule always applies
}

/** The rollout labels joined by "/" (label values cannot contain "/"), else sdbuild, else the pod's name. */
export function rolloutKeyOf(pod: Pod, policy: Policy): string {
  const labels = labelsOf(pod);
  const keyLabels = policy.config.rolloutKeyLabels;
  const values = keyLabels.map((key) => labels[key]);
  if (keyLabels.length > 0 && values.every((v) => typeof v === 'string' && v !== '')) return values.join('/');
  const sdbuild = labels['sdbuild'];
  if (typeof sdbuild === 'string' && sdbuild !== '') return sdbuild;
  return pod.metadata?.name || pod.metadata?.generateName || '';
}
