// The end-to-end tier: every suite in test/e2e/ against one real control plane (and, from the
// first suite that needs it, one real node), one suite at a time, each given the cluster back as
// the first suite found it (test/cluster/shared.ts). The suites that need the node come last: its
// controllers then run for everything after them.
import { after } from 'node:test';
import { stopShared } from './cluster/shared.js';
import './e2e/shared.js';
import './e2e/routing.js';
import './e2e/isolation.js';
import './e2e/executor.js';
import './e2e/content.js';
import './e2e/install.js';
import './e2e/node.js';
import './e2e/deployment.js';

after(stopShared);
