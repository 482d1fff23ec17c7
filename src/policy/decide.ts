// The routing decision, SPEC section 4: the first rule that applies decides, and says why.
import { labelsOf, podImages, type Pod } from './pod.js';
import type { Policy, RouteName } from './policy.js';

export type Rule = 'excluded-image' | 'pin' | 'image-arch' | 'image-class' | 'image-unknown' | 'weightage' | 'default' | 'existing-route';

/** What registry inspection learned about one image (rule 3). */
export interface ImageVerdict {
  class: 'ok' | '32-bit' | 'legacy-glibc' | 'unknown';
  /** For a person: the architecture, the matched label, or why nothing could be learned. */
  detail: string;
}
/** Verdicts by image reference as written in the pod; an image without one was not inspected. */
export type ImageFacts = ReadonlyMap<string, ImageVerdict>;
export const NO_IMAGE_FACTS: ImageFacts = new Map();

export interface Decision {
  route: RouteName;
  rule: Rule;
  /** One sentence for people: the image and entry, the pin, the bucket. */
  detail: string;
  rolloutKey: string;
  bucket: number;
  image?: string;
  entry?: string;
}

export function decide(pod: Pod, policy: Policy, facts: ImageFacts = NO_IMAGE_FACTS): Decision {
  const labels = labelsOf(pod);
  const rolloutKey = rolloutKeyOf(pod, policy);
  const bucket = policy.bucketOf(rolloutKey);
  const images = podImages(pod);

  for (const image of images) {
    for (const { entry, pattern } of policy.exclusions) {
      if (pattern.test(image)) {
        return { rolloutKey, bucket, route: 'legacy', rule: 'excluded-image', image, entry, detail: `image ${image} matches exclusion "${entry}"` };
      }
    }
  }

  for (const pin of policy.pins) {
    if (pin.matches(labels)) {
      const why = pin.reason ? `: ${pin.reason}` : '';
      return { rolloutKey, bucket, route: pin.route, rule: 'pin', detail: `pinned to ${pin.route} by pins[${pin.index}]${why}` };
    }
  }

  for (const image of images) {
    const verdict = facts.get(image);
    if (verdict?.class === '32-bit') {
      return { rolloutKey, bucket, route: 'legacy', rule: 'image-arch', image, detail: `image ${image} is 32-bit (${verdict.detail})` };
    }
    if (verdict?.class === 'legacy-glibc') {
      return { rolloutKey, bucket, route: 'legacy', rule: 'image-class', image, detail: `image ${image} needs a legacy glibc (${verdict.detail})` };
    }
  }

  // Facts that could not be had in time: legacy when the operator says so, else treated as compatible.
  const unknown = images.find((image) => facts.get(image)?.class === 'unknown');
  const unknownNote = unknown ? `image ${unknown} could not be inspected (${facts.get(unknown)!.detail})` : '';
  if (unknown && policy.config.imageInspection.onUnknown === 'legacy') {
    return { rolloutKey, bucket, route: 'legacy', rule: 'image-unknown', image: unknown, detail: `${unknownNote}; imageInspection.onUnknown is legacy` };
  }
  const also = unknown ? `; ${unknownNote}, treated as compatible` : '';

  const weightage = policy.config.weightage;
  if (weightage < 100) {
    const route = bucket < weightage ? 'kata' : 'legacy';
    return { rolloutKey, bucket, route, rule: 'weightage', detail: `bucket ${bucket} of key "${rolloutKey}" is ${route === 'kata' ? 'below' : 'at or above'} weightage ${weightage}${also}` };
  }
  return { rolloutKey, bucket, route: 'kata', rule: 'default', detail: `no rule sends this build elsewhere${also}` };
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
