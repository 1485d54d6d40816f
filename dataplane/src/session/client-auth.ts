/**
 * A client's password exchange, as PostgreSQL runs it: cleartext, MD5 or SCRAM-SHA-256 against the form the
 * config stores. Pure: it answers each PasswordMessage with what to send and whether the client is in.
 */
import { randomBytes } from 'node:crypto';
import type { HbaMethod } from '../auth/hba.js';
import { md5PasswordHash, verifyMd5Response } from '../auth/md5.js';
import { makeScramVerifier, parseScramVerifier, ScramServerExchange, SCRAM_SHA_256 } from '../auth/scram.js';
import {
  authenticationCleartextPassword,
  authenticationMD5Password,
  authenticationSASL,
  authenticationSASLContinue,
  authenticationSASLFinal,
} from '../protocol/backend.js';
import { readPasswordMessage, readSASLInitialResponse, readSASLResponse } from '../protocol/frontend.js';
import { verifyCleartext, type ClientCredentials } from './credentials.js';

export type AuthOutcome =
  /** Send this and wait for the next PasswordMessage. */
  | { kind: 'send'; message: Buffer }
  /** Authenticated; `message` (SASLFinal) goes out before AuthenticationOk. */
  | { kind: 'ok'; message: Buffer | null }
  /** Wrong password or unknown user: 28P01, with the same wording either way. */
  | { kind: 'failed' }
  /** Malformed exchange: 08P01. */
  | { kind: 'violation'; reason: string };

const enum Step {
  Cleartext,
  Md5,
  ScramFirst,
  ScramFinal,
  Done,
}

/** Verifier for unknown users, so that an unknown name costs the same exchange as a wrong password. */
const DUMMY_VERIFIER = parseScramVerifier(makeScramVerifier(randomBytes(16).toString('hex')))!;

export class ClientAuthExchange {
  private step = Step.Done;
  private scram: ScramServerExchange | null = null;
  private md5Salt: Buffer | null = null;

  /** `creds` null: the user is not configured (the exchange still runs, and fails). */
  constructor(
    private readonly creds: ClientCredentials | null,
    private readonly user: string,
  ) {}

  /**
   * Starts the exchange for the hba method (null: no hba, the stored password decides). Like PostgreSQL,
   * an md5 rule with a SCRAM-stored password uses SCRAM.
   */
  begin(method: Exclude<HbaMethod, 'trust' | 'reject'> | null): AuthOutcome {
    const c = this.creds;
    if (method === null) method = c !== null && c.stored.kind === 'md5' ? 'md5' : 'scram-sha-256';
    if (method === 'md5' && c !== null && c.stored.kind === 'scram') method = 'scram-sha-256';
    switch (method) {
      case 'password':
        this.step = Step.Cleartext;
        return { kind: 'send', message: authenticationCleartextPassword() };
      case 'md5':
        this.step = Step.Md5;
        this.md5Salt = randomBytes(4);
        return { kind: 'send', message: authenticationMD5Password(this.md5Salt) };
      default:
        this.scram = new ScramServerExchange(c !== null && c.scram !== null ? c.scram : DUMMY_VERIFIER);
        this.step = Step.ScramFirst;
        return { kind: 'send', message: authenticationSASL([SCRAM_SHA_256]) };
    }
  }

  /** The client's PasswordMessage / SASLInitialResponse / SASLResponse at buf[start..end). */
  onMessage(buf: Buffer, start: number, end: number): AuthOutcome {
    const c = this.creds;
    switch (this.step) {
      case Step.Cleartext: {
        this.step = Step.Done;
        const pw = readPasswordMessage(buf, start, end);
        return c !== null && verifyCleartext(c, this.user, pw) ? { kind: 'ok', message: null } : { kind: 'failed' };
      }
      case Step.Md5: {
        this.step = Step.Done;
        const response = readPasswordMessage(buf, start, end);
        const s = c?.stored;
        const hash = s?.kind === 'md5' ? s.hash : s?.kind === 'plain' ? md5PasswordHash(s.password, this.user) : null;
        return hash !== null && verifyMd5Response(hash, this.md5Salt!, response) ? { kind: 'ok', message: null } : { kind: 'failed' };
      }
      case Step.ScramFirst: {
        const { mechanism, data } = readSASLInitialResponse(buf, start, end);
        this.step = Step.Done;
        if (mechanism !== SCRAM_SHA_256) return { kind: 'violation', reason: `client selected an invalid SASL authentication mechanism "${mechanism}"` };
        const step = this.scram!.handleClientFirst(data);
        if (!step.ok) return { kind: 'violation', reason: `malformed SCRAM message: ${step.error}` };
        this.step = Step.ScramFinal;
        return { kind: 'send', message: authenticationSASLContinue(step.reply) };
      }
      case Step.ScramFinal: {
        this.step = Step.Done;
        const step = this.scram!.handleClientFinal(readSASLResponse(buf, start, end));
        this.scram = null;
        if (!step.ok || c === null) return { kind: 'failed' };
        return { kind: 'ok', message: authenticationSASLFinal(step.reply) };
      }
      default:
        return { kind: 'violation', reason: 'unexpected password message' };
    }
  }
}
