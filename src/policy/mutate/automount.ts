// automountServiceAccountToken as the config says, and the token the ServiceAccount plugin already
// mounted taken out with it.
import type { V1Container, V1Volume } from '@kubernetes/client-node';
import { copyWith } from '../../kube/json.js';
import { CONTAINER_KINDS } from '../../kube/pod.js';
import type { SpecStep } from './step.js';

/** The ServiceAccount admission plugin's token volume, which it injects before webhooks run. */
function isInjectedTokenVolume(volume: V1Volume): boolean {
  return (
    volume.name.startsWith('kube-api-access-') &&
    !!volume.projected?.sources?.some((s) => s.serviceAccountToken)
  );
}

export const automount: SpecStep = (spec, { policy, warn }) => {
  const automount = policy.config.automountServiceAccountToken;
  let next = spec;
  if (spec.automountServiceAccountToken !== automount) {
    if (spec.automountServiceAccountToken === true)
      warn('automountServiceAccountToken: true turned off for build pods');
    next = copyWith(next, { automountServiceAccountToken: automount });
  }
  // The flag alone is too late: mutating webhooks run after the ServiceAccount plugin mounted the
  // token, so its volume and mounts are taken out as well.
  const injected = automount ? [] : (spec.volumes ?? []).filter(isInjectedTokenVolume).map((v) => v.name);
  if (injected.length === 0) return next;
  warn(`service account token volume ${injected.join(', ')} removed (automountServiceAccountToken: false)`);
  next = copyWith(next, { volumes: spec.volumes!.filter((v) => !injected.includes(v.name)) });
  for (const kind of CONTAINER_KINDS) {
    const containers = spec[kind] as V1Container[] | undefined;
    if (!containers?.some((c) => c.volumeMounts?.some((m) => injected.includes(m.name)))) continue;
    next = copyWith(next, {
      [kind]: containers.map((c) =>
        c.volumeMounts?.some((m) => injected.includes(m.name))
          ? copyWith(c, { volumeMounts: c.volumeMounts.filter((m) => !injected.includes(m.name)) })
          : c,
      ),
    });
  }
  return next;
};
