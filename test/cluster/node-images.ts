// The images the node's pods run, built here and pushed to the test's own registry: a pause
// image for the pod sandbox; a stand-in for Screwdriver's launcher (its real image is not
// reachable here) whose run.sh reports where the build ran; and build images made of Debian's
// static busybox: a plain one, the same under an EL6 name, and one whose build step is a genuine
// i386 executable, which runc runs and the sandboxed handler cannot.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipLayer, pushLayers, type FileSpec } from '../registry/layers.js';

const PAUSE_C = `#include <signal.h>
#include <unistd.h>
static void stop(int signal) { (void)signal; _exit(0); }
int main(void) { signal(SIGTERM, stop); signal(SIGINT, stop); for (;;) pause(); }
`;
const HELLO_C = `#include <stdio.h>
int main(void) { puts("hello from a 32-bit build"); return 0; }
`;
/** An EL6 glibc under vsyscall=none dies the same way at once: SIGSEGV, exit 139. */
const SEGFAULT_C = `int main(void) { *(volatile int *)0 = 0; return 0; }
`;
/** Runs a build step as bash does, without execvp's retry of an unknown format as a shell script. */
const RUN_STEP_C = `#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  execv(argv[1], argv + 1);
  fprintf(stderr, "%s: cannot execute binary file: %s\\n", argv[1], strerror(errno));
  return 126;
}
`;

/** The executor mounts /opt/screwdriver/sdlauncher/<version> from the node: a version of the test's own. */
export const LAUNCHER_VERSION = `kata-admission-e2e-${process.pid}`;

const LAUNCHER_ENTRYPOINT = `#!/bin/sh
# Stand-in for Screwdriver's launcher_entrypoint.sh: the executor passes the run.sh line as one argument.
exec /bin/sh -c "$1"
`;
const RUN_SH = `#!/bin/sh
# Stand-in for Screwdriver's run.sh: what the build sees of where it runs, then the image's steps.
report() {
  echo "kernel: $(uname -r)"
  echo "dmesg: $(dmesg 2>&1 | head -n 1)"
  if [ -e /var/run/secrets/kubernetes.io/serviceaccount/token ]; then echo "token: present"; else echo "token: absent"; fi
  if mkdir -p /tmp/m && mount -t tmpfs none /tmp/m 2>/dev/null; then echo "privileged: yes"; else echo "privileged: no"; fi
  if [ -n "$DOCKER_HOST" ]; then
    # A docker build waits for its daemon, as Screwdriver's do.
    for i in $(seq 1 100); do [ -f /certs/client/ready ] && break; sleep 0.1; done
    echo "dind: $(cat /certs/client/ready 2>/dev/null || echo 'not ready')"
  fi
}
report
if [ -x /build/steps.sh ]; then /build/steps.sh || exit $?; fi
{ report; echo "build: done"; } > /dev/termination-log
`;

/** gcc's static build of `source`, as the file's bytes. */
function compiled(source: string, flags: string[]): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-cc-'));
  try {
    writeFileSync(join(dir, 'main.c'), source);
    execFileSync('gcc', [...flags, '-static', '-O2', '-o', join(dir, 'out'), join(dir, 'main.c')]);
    return readFileSync(join(dir, 'out'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// What the builds and the launcher's init command (mktemp, cp -a, mv -fn) call.
const BUSYBOX_APPLETS = [
  'sh',
  'cat',
  'echo',
  'uname',
  'dmesg',
  'head',
  'ls',
  'mkdir',
  'cp',
  'mv',
  'rm',
  'mktemp',
  'chmod',
  'date',
  'base64',
  'mount',
  'seq',
  'sleep',
];
/** Stand-in for docker:20.10-dind (Docker Hub is out of reach; the node mirrors docker.io to its registry). */
const DIND = `#!/bin/sh
# Says whether it is privileged (it can mount) and in which kernel, where the build's client reads it.
mkdir -p /tmp/m /certs/client
if mount -t tmpfs none /tmp/m; then p=privileged; else p=unprivileged; fi
case "$(uname -r)" in *gvisor*) where="in gVisor" ;; *) where="on the node" ;; esac
echo "$p, $where" > /certs/client/ready
exec sleep 100000
`;

/** A root filesystem with /bin/sh and the few tools the builds use, from Debian's busybox-static. */
export const shellLayer = () => gzipLayer(shellFiles());

function shellFiles(): Record<string, FileSpec> {
  const files: Record<string, FileSpec> = { 'bin/busybox': readFileSync('/bin/busybox') };
  for (const applet of BUSYBOX_APPLETS) files[`bin/${applet}`] = { symlink: 'busybox' };
  for (const dir of ['tmp', 'proc', 'sys', 'dev', 'etc']) files[dir] = { dir: true };
  return files;
}

export interface NodeImages {
  pause: string;
  /** The launcher's image, without its tag: the executor adds LAUNCHER_VERSION. */
  launcher: string;
  shell: string;
  /** The shell image under a name the default EL6 exclusions match. */
  el6: string;
  /** A build whose step is an i386 executable. */
  i386: string;
  /** A build that unpacks an i386 tool at run time: its image holds no 32-bit ELF for a scan to find. */
  fetchesI386: string;
  /** A build whose step segfaults at once (exit 139), as an EL6 userland does on Kata. */
  segfaults: string;
  /** A build that fails for an ordinary reason (its tests fail: exit 1). */
  fails: string;
}

/** Builds and pushes the node's images to the registry at `host`; returns their references. */
export async function pushNodeImages(host: string): Promise<NodeImages> {
  const base = `http://${host}`;
  await pushLayers(base, 'pause', 'test', [gzipLayer({ pause: compiled(PAUSE_C, []) })], {
    Entrypoint: ['/pause'],
  });
  const shell = shellLayer();
  const launcher = gzipLayer({
    'opt/sd/launcher_entrypoint.sh': LAUNCHER_ENTRYPOINT,
    'opt/sd/run.sh': RUN_SH,
    'opt/sd/launch': '',
    hab: { dir: true },
  });
  await pushLayers(base, 'launcher', LAUNCHER_VERSION, [shell, launcher]);
  await pushLayers(base, 'ci/node-build', 'test', [shell]);
  await pushLayers(base, 'library/docker', '20.10-dind', [shell, gzipLayer({ 'usr/local/bin/dind': DIND })], {
    Entrypoint: ['/usr/local/bin/dind'],
  });
  await pushLayers(base, 'ci/rhel6-build', 'test', [shell]);
  const i386Step = gzipLayer({
    'build/steps.sh': '#!/bin/sh\n/build/run-step /build/hello32\n',
    'build/run-step': compiled(RUN_STEP_C, []),
    'build/hello32': compiled(HELLO_C, ['-m32']),
  });
  await pushLayers(base, 'ci/i386-build', 'test', [shell, i386Step]);
  const fetchingStep = gzipLayer({
    'build/steps.sh':
      '#!/bin/sh\nbase64 -d /build/tool.b64 > /tmp/tool && chmod +x /tmp/tool && /build/run-step /tmp/tool\n',
    'build/run-step': compiled(RUN_STEP_C, []),
    'build/tool.b64': compiled(HELLO_C, ['-m32']).toString('base64'),
  });
  await pushLayers(base, 'ci/fetches-i386', 'test', [shell, fetchingStep]);
  const segfaultStep = gzipLayer({
    'build/steps.sh': '#!/bin/sh\n/build/legacy-tool\n',
    'build/legacy-tool': compiled(SEGFAULT_C, []),
  });
  await pushLayers(base, 'ci/segfaults', 'test', [shell, segfaultStep]);
  const failingStep = gzipLayer({ 'build/steps.sh': '#!/bin/sh\necho "npm ERR! Test failed."\nexit 1\n' });
  await pushLayers(base, 'ci/fails', 'test', [shell, failingStep]);
  return {
    pause: `${host}/pause:test`,
    launcher: `${host}/launcher`,
    shell: `${host}/ci/node-build:test`,
    el6: `${host}/ci/rhel6-build:test`,
    i386: `${host}/ci/i386-build:test`,
    fetchesI386: `${host}/ci/fetches-i386:test`,
    segfaults: `${host}/ci/segfaults:test`,
    fails: `${host}/ci/fails:test`,
  };
}
