/**
 * The agent's error catalogue. Config problems travel as ConfigError (field paths, sent in NACKs); these
 * codes cover the agent's own failures.
 */
export interface AgentErrorDef {
  readonly code: string;
}

export const A = {
  badFlag: { code: 'DM_AGENT_BAD_FLAG' },
  stateUnreadable: { code: 'DM_AGENT_STATE_UNREADABLE' },
  stateWriteFailed: { code: 'DM_AGENT_STATE_WRITE_FAILED' },
  badPush: { code: 'DM_AGENT_BAD_PUSH' },
  hostRefused: { code: 'DM_AGENT_HOST_REFUSED' },
  drained: { code: 'DM_AGENT_DRAINED' },
} as const satisfies Record<string, AgentErrorDef>;

export class AgentError extends Error {
  constructor(
    readonly def: AgentErrorDef,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }

  get code(): string {
    return this.def.code;
  }
}
