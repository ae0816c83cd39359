/**
 * Who we are to a registry: credentials from CRECIPE_REGISTRY_USER/PASSWORD, else from
 * docker's config file (`auths` entries, then a credential helper), as `docker login`
 * leaves them; and the answer to a 401's WWW-Authenticate challenge (Basic, or a Bearer
 * token fetched from the realm it names, as the distribution spec's token flow says).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { childProcess } from "../../runtime.ts";

export interface Credentials {
  username: string;
  password: string;
  /** Where they came from, for error messages ("CRECIPE_REGISTRY_USER", "~/.docker/config.json"). */
  source: string;
}

/** docker's config file: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(): string {
  return path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), ".docker"), "config.json");
}

/** The keys `docker login` may have stored a registry under. */
function keysFor(registry: string): string[] {
  if (registry === "docker.io") return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"];
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
}

/** The credentials for `registry`, or undefined (anonymous). */
export function credentialsFor(registry: string): Credentials | undefined {
  const user = process.env.CRECIPE_REGISTRY_USER;
  if (user) return { username: user, password: process.env.CRECIPE_REGISTRY_PASSWORD ?? "", source: "CRECIPE_REGISTRY_USER/CRECIPE_REGISTRY_PASSWORD" };
  const file = dockerConfigPath();
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string }>; credHelpers?: Record<string, string>; credsStore?: string };
  try {
    config = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
  const keys = keysFor(registry);
  const helper = keys.map((k) => config.credHelpers?.[k]).find(Boolean) ?? config.credsStore;
  for (const key of keys) {
    const entry = config.auths?.[key];
    if (entry?.auth) {
      const text = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = text.indexOf(":");
      if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1), source: file };
    }
    if (entry?.username) return { username: entry.username, password: entry.password ?? "", source: file };
  }
  if (helper) {
    // docker-credential-HELPER get: the server on stdin, {"Username","Secret"} on stdout.
    for (const key of keys) {
      const r = childProcess().spawnSync(`docker-credential-${helper}`, ["get"], { input: key, encoding: "utf8" });
      if (r.status === 0) {
        try {
          const answer = JSON.parse(r.stdout) as { Username?: string; Secret?: string };
          if (answer.Secret) return { username: answer.Username ?? "", password: answer.Secret, source: `docker-credential-${helper}` };
        } catch {
          // not JSON: no credentials from this helper
        }
      }
    }
  }
  return undefined;
}

/** A WWW-Authenticate header: its scheme and parameters (realm, service, scope). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(" ");
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))/g)) {
    params[m[1].toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3];
  }
  return { scheme, params };
}

export function basicHeader(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
}
