// Paths of the files under test, from the repository root.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const terraformDir = join(repoRoot, 'infra/terraform/aws');
export const remoteDir = join(repoRoot, 'infra/remote');
export const cloudInitTemplate = join(terraformDir, 'templates/cloud-init.sh.tftpl');
export const serverComposeFile = join(remoteDir, 'server.compose.yml');
export const clientComposeFile = join(remoteDir, 'client.compose.yml');
