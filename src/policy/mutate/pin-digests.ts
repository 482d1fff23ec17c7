// What runs is what was judged: with content scanning, an image written by tag is pinned to the
// digest its verdict is about (`name:tag@sha256:...`, keeping the tag for people, as Sigstore's
// policy-controller does), so a tag moved between admission and pull cannot run content nobody
// scanned. The kubelet pulls by the digest; the tag is then only a label.
import type { V1Container } from '@kubernetes/client-node';
import { copyWith } from '../../kube/json.js';
import type { SpecStep } from './step.js';

export const pinDigests: SpecStep = (spec, { policy, facts, kinds }) => {
  const { content } = policy.config.imageInspection;
  if (!content.enabled || !content.pinDigests || facts.size === 0) return spec;
  const pinned = (c: V1Container) => {
    const digest = c.image && !c.image.includes('@') ? facts.get(c.image)?.digest : undefined;
    return digest ? copyWith(c, { image: `${c.image}@${digest}` }) : c;
  };
  let next = spec;
  for (const kind of kinds) {
    const containers = spec[kind] as V1Container[] | undefined;
    const changed = containers?.map(pinned);
    if (changed?.some((c, i) => c !== containers![i])) next = copyWith(next, { [kind]: changed });
  }
  return next;
};
