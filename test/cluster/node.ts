// A real node next to the test control plane: containerd 2.x with runc and gVisor's runsc, the
// kubelet, kube-scheduler and kube-controller-manager of the control plane's release, all under
// one throwaway folder. runsc is the handler behind the `kata` RuntimeClass here: it stands in for
// Kata's guest kernel (it runs only 64-bit ELF, as the failures that matter need), not for a VM.
// Pods get loopback only: an eth0 whose peer is inside the pod's own network namespace, so no
// packet leaves it. Nothing here listens outside 127.0.0.1.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import {
  builtBinaries,
  freePort,
  startProcess,
  stopChild,
  waitForLine,
  type ControlPlane,
  type Started,
} from './controlplane.js';
import { watchUntil } from './watch.js';

export const NODE_NAME = 'localhost';
/** The node's pool label: the default kata route's nodeSelector, so kata builds can land here. */
export const NODE_LABELS = { dedicated: 'screwdriver-kata' };

export interface Node {
  name: string;
  /** The folder under which containerd, the kubelet and the pods' logs live. */
  dir: string;
  stop(): Promise<void>;
}

/** Why no node can start on this machine, or nothing when it can. */
export function nodeUnsupported(): string | undefined {
  if (process.getuid?.() !== 0) return 'the node needs root (containerd, the kubelet, mounts)';
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers'))
    return 'the node needs cgroups mounted at /sys/fs/cgroup';
  for (const tool of ['runc', 'nsenter', 'ip'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `the node needs ${tool}`;
  if (!existsSync('/usr/lib/cni/loopback')) return 'the node needs the CNI plugins (/usr/lib/cni)';
  return undefined;
}

/**
 * A CNI plugin (CNI's exec protocol) giving the pod an eth0 that leads nowhere: containerd wants an
 * address on eth0, and a veth pair with both ends in the pod's namespace carries nothing out.
 */
const LOOPBACK_ONLY_PLUGIN = `#!/bin/sh
set -e
case "$CNI_COMMAND" in
  ADD)
    n=$(printf %s "$CNI_CONTAINERID" | cksum | cut -d' ' -f1)
    ip="10.244.$(( n / 256 % 250 + 1 )).$(( n % 250 + 2 ))"
    nsenter --net="$CNI_NETNS" ip link add "$CNI_IFNAME" type veth peer name nowhere0
    nsenter --net="$CNI_NETNS" ip addr add "$ip/32" dev "$CNI_IFNAME"
    nsenter --net="$CNI_NETNS" ip link set nowhere0 up
    nsenter --net="$CNI_NETNS" ip link set "$CNI_IFNAME" up
    printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"%s/32","interface":0}]}' "$CNI_IFNAME" "$CNI_NETNS" "$ip"
    ;;
  DEL|CHECK|GC|STATUS) ;;
  VERSION) printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
esac
`;

function writeCni(dir: string) {
  mkdirSync(join(dir, 'cni', 'bin'), { recursive: true });
  mkdirSync(join(dir, 'cni', 'net.d'), { recursive: true });
  writeFileSync(join(dir, 'cni', 'bin', 'loopback-only'), LOOPBACK_ONLY_PLUGIN, { mode: 0o755 });
  writeFileSync(
    join(dir, 'cni', 'net.d', '10-loopback-only.conflist'),
    JSON.stringify({ cniVersion: '1.0.0', name: 'loopback-only', plugins: [{ type: 'loopback-only' }] }),
  );
}

/** containerd's config: its own root and state, runc as the default handler, runsc as `kata`. */
function containerdConfig(dir: string, bin: string, registry: string, pause: string): string {
  const runtime = "plugins.'io.containerd.cri.v1.runtime'";
  writeFileSync(
    join(dir, 'runsc.toml'),
    // systrap: /dev/kvm here is nested and gVisor's KVM platform hangs on it.
    `binary_name = "${bin}/runsc"\nroot = "${dir}/runsc"\n[runsc_config]\n  platform = "systrap"\n  debug-log = "${dir}/runsc-logs/"\n`,
  );
  mkdirSync(join(dir, 'certs.d', registry), { recursive: true });
  writeFileSync(
    join(dir, 'certs.d', registry, 'hosts.toml'),
    `server = "http://${registry}"\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`,
  );
  // Every other registry is the test registry too (docker.io for the executor's dind image, an
  // unreachable example registry in deploy/): no pull leaves the machine, not even a DNS query.
  mkdirSync(join(dir, 'certs.d', '_default'), { recursive: true });
  writeFileSync(
    join(dir, 'certs.d', '_default', 'hosts.toml'),
    `server = "http://${registry}"\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`,
  );
  return `version = 3
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
[plugins."io.containerd.server.v1.grpc"]
  address = "${dir}/containerd.sock"
[plugins."io.containerd.server.v1.ttrpc"]
  address = "${dir}/containerd.sock.ttrpc"
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."io.containerd.cri.v1.images"]
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${pause}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "${dir}/certs.d"
[${runtime}]
  # These machines drop CAP_SYS_RESOURCE: a shim may not lower its oom_score_adj.
  restrict_oom_score_adj = true
  [${runtime}.cni]
    bin_dirs = ["${dir}/cni/bin", "/usr/lib/cni"]
    conf_dir = "${dir}/cni/net.d"
  [${runtime}.containerd]
    default_runtime_name = "runc"
    [${runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${runtime}.containerd.runtimes.runc.options]
        BinaryName = "runc"
        SystemdCgroup = false
    # Behind the kata-ia32 RuntimeClass: a stand-in for Kata with an IA32-capable guest kernel.
    [${runtime}.containerd.runtimes.kata-ia32]
      runtime_type = "io.containerd.runc.v2"
      [${runtime}.containerd.runtimes.kata-ia32.options]
        BinaryName = "runc"
        SystemdCgroup = false
    [${runtime}.containerd.runtimes.kata]
      runtime_type = "io.containerd.runsc.v1"
      # As Kata's own RuntimeClasses are set up: a privileged container gets no host device.
      privileged_without_host_devices = true
      [${runtime}.containerd.runtimes.kata.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "${dir}/runsc.toml"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
`;
}

function kubeletConfig(dir: string, cgroupRoot: string, ports: { kubelet: number; healthz: number }): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // The node's pods in cgroups of their own, so that stopping the node can find every process.
    cgroupRoot,
    containerRuntimeEndpoint: `unix://${dir}/containerd.sock`,
    cgroupDriver: 'cgroupfs',
    // These machines mount cgroup v1, which Kubernetes 1.35+ refuses unless told.
    failCgroupV1: false,
    address: '127.0.0.1',
    port: ports.kubelet,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: ports.healthz,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    podLogsDir: join(dir, 'pod-logs'),
    failSwapOn: false,
    localStorageCapacityIsolation: false,
    // A shared machine's disk and memory are not the node's to defend: never evict a test pod.
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    maxPods: 32,
    resolvConf: '',
    registerNode: true,
  });
}

async function nodeReady(cp: ControlPlane, timeoutMs: number): Promise<void> {
  await watchUntil<V1Node>(
    cp.admin,
    '/api/v1/nodes',
    { fieldSelector: `metadata.name=${NODE_NAME}` },
    (node) =>
      !!node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
      !node.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/not-ready'),
    { timeoutMs, what: `node ${NODE_NAME} Ready` },
  );
}

/** Kills every process left in the node's cgroups, then removes them, deepest first. */
const cgroupTeardown = (root: string) => `
for c in /sys/fs/cgroup/*${root}; do
  [ -d "$c" ] || continue
  find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
done
for c in /sys/fs/cgroup/*${root}; do find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
true`;

/** Starts the node's processes in order, each once the one before said it is up. */
export async function startNode(cp: ControlPlane, registry: string, pause: string): Promise<Node> {
  const bin = builtBinaries('node');
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-node-'));
  const children: ChildProcess[] = [];
  // Each process's output in <dir>/logs, for whoever debugs a failed run (KATA_ADMISSION_KEEP_NODE keeps it).
  mkdirSync(join(dir, 'logs'));
  const logged = (name: string, started: Started) => {
    const file = createWriteStream(join(dir, 'logs', `${name}.log`));
    started.child.stdout!.pipe(file);
    started.child.stderr!.pipe(file);
    children.push(started.child);
    return started;
  };
  const cgroupRoot = `/${basename(dir)}`;
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child);
    // Shims and sandboxes outlive containerd by design; the pods' processes live in cgroupRoot.
    spawnSync('pkill', ['-KILL', '-f', `${dir}/`]);
    spawnSync('sh', ['-c', cgroupTeardown(cgroupRoot)]);
    // The kubelet's mounts of pod volumes must go before their folder does.
    spawnSync('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
    if (!process.env.KATA_ADMISSION_KEEP_NODE) rmSync(dir, { recursive: true, force: true });
  };
  try {
    writeCni(dir);
    writeFileSync(join(dir, 'containerd.toml'), containerdConfig(dir, bin, registry, pause));
    const path = `${bin}:${process.env.PATH}`;
    const containerd = startProcess(join(bin, 'containerd'), ['--config', join(dir, 'containerd.toml')], {
      PATH: path,
    });
    logged('containerd', containerd);
    await waitForLine(containerd, /containerd successfully booted/, 'containerd');
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, cp.admin.exportConfig());
    const ports = { kubelet: await freePort(), healthz: await freePort() };
    spawnSync('sh', ['-c', `for c in /sys/fs/cgroup/*/; do mkdir -p "$c${cgroupRoot}"; done`]);
    writeFileSync(join(dir, 'kubelet.json'), kubeletConfig(dir, cgroupRoot, ports));
    const labels = Object.entries(NODE_LABELS).map(([k, v]) => `${k}=${v}`);
    const kubelet = startProcess(
      join(bin, 'kubelet'),
      [
        `--config=${join(dir, 'kubelet.json')}`,
        `--kubeconfig=${kubeconfig}`,
        `--root-dir=${join(dir, 'kubelet')}`,
        `--hostname-override=${NODE_NAME}`,
        `--node-labels=${labels.join(',')}`,
        '--v=1',
      ],
      { PATH: path },
    );
    logged('kubelet', kubelet);
    for (const [name, extra] of [
      ['kube-scheduler', []],
      [
        'kube-controller-manager',
        [
          '--controllers=*,-serviceaccount-token',
          '--use-service-account-credentials=false',
          // Published as kube-root-ca.crt in every namespace: pods' service-account volumes need it.
          `--root-ca-file=${cp.caFile}`,
        ],
      ],
    ] as const) {
      const child = startProcess(join(bin, name), [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${await freePort()}`,
        ...extra,
      ]);
      logged(name, child);
    }
    await nodeReady(cp, 120_000);
    return { name: NODE_NAME, dir, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
