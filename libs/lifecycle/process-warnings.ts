/**
 * Node prints process warnings to stderr as plain text. Services route them into their JSON log
 * and the CLI keeps stderr for its own messages. KafkaJS 2.2.4 arms timers with negative delays
 * under Node 24 (harmless: they fire at once), which would print a TimeoutNegativeWarning for
 * every client it creates, so that one is dropped.
 */
const KNOWN_HARMLESS = new Set(['TimeoutNegativeWarning']);

export function routeProcessWarnings(report: (warning: Error) => void): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (!KNOWN_HARMLESS.has(warning.name)) report(warning);
  });
}
