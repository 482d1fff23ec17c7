// The embedded default: Screwdriver's values from docs/configuration.md, used when no --config is given.
// A test checks that it says exactly what the schema's defaults say.
export const DEFAULT_CONFIG_YAML = `\
mode: enforce
namespaces: [sd-build-namespace]
podSelector:
  matchLabels: {app: screwdriver, tier: builds}
otherPods: route
rolloutKeyLabels: [screwdriver.cd/pipeline, screwdriver.cd/job]
weightage: 100
# Names EL6 images go by (RHEL/CentOS/Oracle/Scientific Linux 6: glibc 2.12 needs vsyscall, which
# the Kata guest kernel lacks). Regular expressions, case-insensitive, matched anywhere in the image.
exclusions:
  - 'rhel-?6(?![0-9])'
  - 'centos[:/_-]?(centos)?6(?![0-9])'
  - '(^|[^a-z0-9])el6(?![0-9])'
  - 'oraclelinux:6(?![0-9])'
  - '(^|/)sl:6(?![0-9])'
  - 'ubi6'
pins: []
defaultRoute: kata
fallbackRoute: legacy
routes:
  kata:
    runtimeClassName: kata
    nodeSelector: {dedicated: screwdriver-kata}
    tolerateNodeSelectorTaints: true
    preferredNodeSelectors: {}
    tolerations: []
    annotations: {}
    allowPrivileged: false
    privilegedContainers: [dind, buildkitd]
    allowedCapabilities: [AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT]
    hostPathPrefixes: [/opt/screwdriver/]
  legacy:
    runtimeClassName: null
    nodeSelector: {}
    tolerateNodeSelectorTaints: true
    preferredNodeSelectors: {}
    tolerations: []
    annotations: {}
    allowPrivileged: false
    privilegedContainers: [dind, buildkitd]
    allowedCapabilities: [AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT]
    hostPathPrefixes: [/opt/screwdriver/]
automountServiceAccountToken: false
imageInspection:
  enabled: false
  timeoutMs: 1500
  cacheTtlSeconds: 3600
  negativeCacheTtlSeconds: 60
  maxEntries: 10000
  onUnknown: kata
  classRoutes: {}
  legacyGlibc:
    - {label: org.opencontainers.image.base.name, pattern: "centos:6|rhel-?6|el6"}
    - {history: "centos-release-6|redhat-release-server-6"}
  registries: {}
  content:
    enabled: false
    workers: 2
    maxQueued: 1000
    maxImageBytes: 4294967296
    maxImageSeconds: 600
    ignore: ["lib/firmware/**", "usr/lib/firmware/**", "**/testdata/**"]
    layerCacheBytes: 67108864
    forgetAfterSeconds: 2592000
    retryFailedSeconds: 600
annotationPrefix: kata-admission.screwdriver.cd
`;
