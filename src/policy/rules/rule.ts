// The shape every routing rule has: what the decision knows in, a decision or nothing out.
import type { Pod } from '../../kube/pod.js';
import type { Policy, RouteName } from '../policy.js';

export type RuleName =
  | 'excluded-image'
  | 'pin'
  | 'image-override'
  | 'image-arch'
  | 'image-class'
  | 'image-unknown'
  | 'weightage'
  | 'default'
  | 'existing-route';

/** What registry inspection learned about one image. */
export interface ImageVerdict {
  class: 'ok' | '32-bit' | 'legacy-glibc' | 'unknown';
  /** For a person: the architecture, the matched label, the content found, or why nothing could be learned. */
  detail: string;
  /** What an operator chose for this image (an ImageVerdict's spec.override), apart from what was learned. */
  override?: Override;
  /** The digest these facts are about, when the reference names a tag: what the pod is pinned to. */
  digest?: string;
  /** The class was learned from a build that failed on this route, not read from the image. */
  learned?: { route: string };
}
/** An operator's choice of route for one image, whatever its content or the config says. */
export interface Override {
  route: string;
  reason: string;
}
/** Verdicts by image reference as written in the pod; an image without one was not inspected. */
export type ImageFacts = ReadonlyMap<string, ImageVerdict>;

export interface RuleContext {
  pod: Pod;
  policy: Policy;
  facts: ImageFacts;
  labels: Readonly<Record<string, unknown>>;
  /** Every image of the pod: containers, init containers, ephemeral containers. */
  images: readonly string[];
  rolloutKey: string;
  bucket: number;
}

/** The part of a decision a rule makes; decide adds the rollout key and bucket. */
export interface Verdict {
  route: RouteName;
  rule: RuleName;
  /** One sentence for people: the image and entry, the pin, the bucket. */
  detail: string;
  image?: string;
  entry?: string;
}

export type Rule = (context: RuleContext) => Verdict | undefined;
