/**
 * doormanctl's exit codes, one per outcome a script can act on. `diff` owns 1 ("there are changes"), so
 * every failure is above 1.
 */
export const EXIT = {
  OK: 0,
  /** diff: the document differs from the current generation. */
  CHANGES: 1,
  /** Bad flags, an unreadable or invalid document (server-side validation, with field paths). */
  INVALID: 2,
  /** No control-plane replica could be reached. */
  UNREACHABLE: 3,
  /** The control plane refused: conflict, not found, not authorised, no leader. */
  REFUSED: 4,
  /** The control plane failed (etcd down, internal error). */
  SERVER: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure doormanctl reports on stderr (one or more lines) before exiting with `exit`. */
export class CliError extends Error {
  constructor(
    readonly exit: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
