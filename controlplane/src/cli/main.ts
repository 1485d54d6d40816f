/**
 * doormanctl: the operator's command line for a Doorman fleet. Talks gRPC (Admin service) only.
 */
import { GrpcAdmin } from './admin-api.js';

// grpc-js sets the TLS servername to the target even when it is an IP address (127.0.0.1 in every dev
// setup); Node then prints DEP0123 on each run. The certificate is still checked against the IP SAN.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
  if (code === 'DEP0123') return;
  (emitWarning as (w: string | Error, ...r: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
import { runCli } from './program.js';

const code = await runCli(process.argv.slice(2), {
  connect: (opts) => new GrpcAdmin(opts),
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  now: () => Date.now(),
});
// Let buffered output reach a pipe before exiting.
process.stdout.write('', () => process.exit(code));
