/**
 * The FCM emulator as a process, for `make dev` and benchmarks: listens on FCM_EMULATOR_PORT
 * (default 8443) on loopback, copies its CA to FCM_EMULATOR_CA_OUT when set, and prints where it
 * is. Point push at it with FCM_EMULATOR=127.0.0.1:<port> and FCM_EMULATOR_CA=<that file>.
 */
import { copyFileSync } from 'node:fs';
import { startFcmEmulator } from './emulator.ts';

const emulator = await startFcmEmulator({ port: Number(process.env.FCM_EMULATOR_PORT ?? 8443) });
const caFile = process.env.FCM_EMULATOR_CA_OUT ?? emulator.caFile;
if (caFile !== emulator.caFile) copyFileSync(emulator.caFile, caFile);
process.stdout.write(
  `${JSON.stringify({ msg: 'FCM emulator listening', emulator: `${emulator.host}:${emulator.port}`, ca: caFile })}\n`,
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void emulator.close().then(() => process.exit(0));
  });
}
