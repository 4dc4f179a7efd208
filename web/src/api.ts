// Why: every call to the server goes through here, so the CSRF header, JSON handling and
// error shape ({code, message, field}) are handled once.

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string, public field: string | null) {
    super(message);
  }
}

let csrf: string | null = null;
export function setCsrf(token: string | null) {
  csrf = token;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  let res: Response;
  try {
    res = await fetch('/api/v1' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.', null);
  }
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const e = data?.error;
    throw new ApiError(res.status, e?.code ?? 'error', e?.message ?? `The server answered ${res.status}.`, e?.field ?? null);
  }
  return data as T;
}

export type Level = 'connect' | 'view' | 'modify' | 'manage';
export const LEVELS: Level[] = ['connect', 'view', 'modify', 'manage'];
export const atLeast = (have: Level | null | undefined, need: Level) => !!have && LEVELS.indexOf(have) >= LEVELS.indexOf(need);

export interface Me {
  user: User;
  csrf_token: string | null;
  mfa_pending: boolean;
  must_change_password: boolean;
  capabilities: { manage_users: boolean; read_audit: boolean; create_resources: boolean; manage_policies: boolean };
}
export interface User {
  id: string; username: string; full_name: string; email?: string; role?: string; super_admin?: boolean;
  must_change_password?: boolean; disabled?: boolean; locked_until?: string | null; totp_enabled?: boolean; created_at?: string;
}
export interface Resource {
  id: string; name: string; host: string; resource_type: string; description: string; tags: string[];
  ports: { ssh: number | null; telnet: number | null; rdp: number | null; database: number | null };
  policy_id: string; owner_id: string; access: Level | null; created_at: string; updated_at: string;
}
export interface Account {
  id: string; resource_id: string; resource_name: string; resource_type: string; host: string; username: string;
  ssh_port: number | null; telnet_port: number | null; rdp_port: number | null; path: string[]; secret_kind: string; has_passphrase: boolean; notes: string; secret_changed_at: string; secret_expired: boolean; access: Level; created_at: string;
}
export interface Share { id: string; subject_kind: string; subject_id: string; subject_name: string; object_kind: string; object_id: string; level: Level; created_by: string }
export interface Group { id: string; name: string; description: string; member_ids: string[] }
export interface ResourceGroup { id: string; name: string; description: string; resource_ids: string[]; access: Level; owner_id: string }
export interface Policy {
  id: string; name: string; builtin: number; min_length: number; max_length: number; min_lower: number; min_upper: number;
  min_digits: number; min_special: number; special_chars: string; start_with_letter: number; history_depth: number; max_age_days: number;
}
export const ROLES: Record<string, string> = {
  administrator: 'Administrator',
  password_administrator: 'Password Administrator',
  password_auditor: 'Password Auditor',
  password_user: 'Password User',
};
export const TYPES: Record<string, string> = {
  linux: 'Linux/Unix', windows: 'Windows', network_device: 'Network device', database: 'Database', generic: 'Generic',
};
