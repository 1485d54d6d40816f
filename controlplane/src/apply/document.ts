import { parseDocument } from 'yaml';
import { ConfigError, parseConfig, type DoormanConfig } from '@doorman/proto';
import { CpError } from '../errors.js';
import type { Doc } from '../secrets/split.js';

export interface ParsedDocument {
  /** The YAML document's JSON form (secrets still in). */
  doc: Doc;
  config: DoormanConfig;
  warnings: string[];
}

/** Turns an issue list into the INVALID_ARGUMENT detail: one `path: message` line per issue. */
export function invalidConfig(err: ConfigError): CpError {
  return new CpError('INVALID_CONFIG', err.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
}

/**
 * Validates a document with the data plane's own schema. Files it names (pg_hba path, TLS files)
 * live on the data planes, not here: the server checks the shape, each data plane checks its files
 * and NACKs what it cannot load.
 */
export function validate(doc: Doc | string, source: string): { config: DoormanConfig; warnings: string[] } {
  const warnings: string[] = [];
  const text = typeof doc === 'string' ? doc : JSON.stringify(doc);
  try {
    const config = parseConfig(text, source, {
      baseDir: '/',
      readFile: () => '',
      onWarning: (path, message) => warnings.push(`${path}: ${message}`),
    });
    return { config, warnings };
  } catch (err) {
    if (err instanceof ConfigError) throw invalidConfig(err);
    throw err;
  }
}

/** Parses the pools.yaml text of an apply: YAML errors and schema issues both come back with paths. */
export function parseApplyDocument(yamlText: string): ParsedDocument {
  const { config, warnings } = validate(yamlText, 'apply');
  // parseConfig accepted the text, so it is one well-formed YAML document.
  const value: unknown = parseDocument(yamlText, { merge: true }).toJS({ maxAliasCount: 1000 });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CpError('INVALID_CONFIG', '(root): must be a map with general and pools sections');
  }
  // Round-trip through JSON: what is stored and pushed is JSON, so compare what will be stored.
  return { doc: JSON.parse(JSON.stringify(value)) as Doc, config, warnings };
}
