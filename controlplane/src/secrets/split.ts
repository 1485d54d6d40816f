/**
 * Secrets live apart from the config: users[].password, users[].server_password and
 * general.admin_password are cut out of the applied document (which is then safe to store, diff,
 * print and push over any stream) and kept as a SecretSet, encrypted at rest.
 */

export interface UserSecrets {
  /** '' = unset. */
  password: string;
  serverPassword: string;
}

export interface SecretSet {
  adminPassword: string;
  /** database -> username -> secrets */
  users: Record<string, Record<string, UserSecrets>>;
}

/** A YAML document in its JSON form. */
export type Doc = Record<string, unknown>;

export const USER_SECRET_KEYS = ['password', 'server_password'] as const;

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function secretText(v: unknown): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : String(v);
}

/** The user entries of a pool, whether YAML wrote them as a list or as a map keyed by index. */
export function userList(pool: Record<string, unknown>): Record<string, unknown>[] {
  const users = pool.users;
  const values = Array.isArray(users) ? users : isMap(users) ? Object.values(users) : [];
  return values.filter(isMap);
}

export function emptySecrets(): SecretSet {
  return { adminPassword: '', users: {} };
}

/** Returns the document without secrets (a deep copy) and the secrets it held. */
export function splitSecrets(doc: Doc): { document: Doc; secrets: SecretSet } {
  const document = structuredClone(doc);
  const secrets = emptySecrets();
  const general = document.general;
  if (isMap(general) && 'admin_password' in general) {
    secrets.adminPassword = secretText(general.admin_password);
    delete general.admin_password;
    // A section that held only the secret would otherwise show up as a config change.
    if (Object.keys(general).length === 0) delete document.general;
  }
  const pools = document.pools;
  if (isMap(pools)) {
    for (const [db, pool] of Object.entries(pools)) {
      if (!isMap(pool)) continue;
      for (const user of userList(pool)) {
        const username = secretText(user.username);
        const entry: UserSecrets = { password: secretText(user.password), serverPassword: secretText(user.server_password) };
        for (const key of USER_SECRET_KEYS) delete user[key];
        if (entry.password === '' && entry.serverPassword === '') continue;
        (secrets.users[db] ??= {})[username] = entry;
      }
    }
  }
  return { document, secrets };
}

/**
 * Puts secrets back into a document (a deep copy). `render` chooses what goes in: the values
 * themselves (to validate) or a marker such as "[set]" (to print).
 */
export function mergeSecrets(doc: Doc, secrets: SecretSet, render: (value: string) => string | undefined = (v) => (v === '' ? undefined : v)): Doc {
  const document = structuredClone(doc);
  const admin = render(secrets.adminPassword);
  if (admin !== undefined) {
    if (!isMap(document.general)) document.general = {};
    (document.general as Record<string, unknown>).admin_password = admin;
  }
  const pools = document.pools;
  if (isMap(pools)) {
    for (const [db, pool] of Object.entries(pools)) {
      if (!isMap(pool)) continue;
      for (const user of userList(pool)) {
        const s = secrets.users[db]?.[secretText(user.username)] ?? { password: '', serverPassword: '' };
        const password = render(s.password);
        const serverPassword = render(s.serverPassword);
        if (password !== undefined) user.password = password;
        if (serverPassword !== undefined) user.server_password = serverPassword;
      }
    }
  }
  return document;
}

/** Keeps only the secrets of users present in `doc` (after a delete or a rollback). */
export function secretsFor(doc: Doc, secrets: SecretSet): SecretSet {
  const out: SecretSet = { adminPassword: secrets.adminPassword, users: {} };
  const pools = doc.pools;
  if (!isMap(pools)) return out;
  for (const [db, pool] of Object.entries(pools)) {
    if (!isMap(pool)) continue;
    for (const user of userList(pool)) {
      const name = secretText(user.username);
      const s = secrets.users[db]?.[name];
      if (s) (out.users[db] ??= {})[name] = { ...s };
    }
  }
  return out;
}

/** Canonical JSON (sorted keys), so equal secret sets compare equal. */
export function secretsEqual(a: SecretSet, b: SecretSet): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isMap(v)) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
