// The lists the config's defaults and checks are made of: facts about EL6 image names, Pod
// Security, and Kata, kept apart from the schema that uses them.

/** The names EL6 images go by (docs/routing.md: Decision rules); the embedded default lists the same. */
export const EL6_EXCLUSIONS = [
  'rhel-?6(?![0-9])',
  'centos[:/_-]?(centos)?6(?![0-9])',
  '(^|[^a-z0-9])el6(?![0-9])',
  'oraclelinux:6(?![0-9])',
  '(^|/)sl:6(?![0-9])',
  'ubi6',
] as const;

/** Pod Security Standards "baseline": the capabilities a container may add without being privileged. */
export const BASELINE_CAPABILITIES = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
] as const;

/** Kata's per-pod annotations (io.katacontainers.*) that a route may set; others are a config error. */
export const KATA_ANNOTATIONS = [
  'io.katacontainers.config.hypervisor.kernel_params',
  'io.katacontainers.config.hypervisor.default_vcpus',
  'io.katacontainers.config.hypervisor.default_max_vcpus',
  'io.katacontainers.config.hypervisor.default_memory',
  'io.katacontainers.config.hypervisor.memory_slots',
  'io.katacontainers.config.hypervisor.machine_type',
  'io.katacontainers.config.hypervisor.kernel',
  'io.katacontainers.config.hypervisor.image',
  'io.katacontainers.config.hypervisor.initrd',
  'io.katacontainers.config.hypervisor.firmware',
  'io.katacontainers.config.hypervisor.enable_iommu',
  'io.katacontainers.config.hypervisor.enable_hugepages',
  'io.katacontainers.config.hypervisor.block_device_driver',
  'io.katacontainers.config.hypervisor.shared_fs',
  'io.katacontainers.config.hypervisor.virtio_fs_cache',
  'io.katacontainers.config.hypervisor.virtio_fs_extra_args',
  'io.katacontainers.config.hypervisor.cpu_features',
  'io.katacontainers.config.hypervisor.entropy_source',
  'io.katacontainers.config.runtime.disable_guest_seccomp',
  'io.katacontainers.config.runtime.sandbox_cgroup_only',
  'io.katacontainers.config.agent.kernel_modules',
] as const;
