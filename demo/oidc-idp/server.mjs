// A small OpenID Connect identity provider for Porte's local demo and tests.
//
//   node demo/oidc-idp/server.mjs <config.json>
//
// It wraps `oidc-provider` (OpenID Certified) and adds only what a demo needs: static
// clients and users from the config file, a plain login page that checks passwords, and
// automatic consent. Keys, cookie keys, sessions and grants live in memory and are new on
// every start. Once listening it prints exactly one line, `ready <issuer>`, to stdout;
// everything else (warnings, errors) goes to stderr. Passwords and tokens are never logged.
//
// Config (JSON):
//   host, port, issuer, title,
//   clients: [{client_id, client_secret, redirect_uris, post_logout_redirect_uris?, backchannel_logout_uri?}],
//   users:   [{username, password, sub, email, email_verified, name, groups, amr, acr, claims?}]

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

// stdout carries only the `ready` line; oidc-provider prints its notices with console.info.
console.info = console.error.bind(console);

const MAX_FORM_BYTES = 16 * 1024;

function fail(message) {
  process.stderr.write(`oidc-idp: ${message}\n`);
  process.exit(2);
}

function loadConfig(path) {
  if (!path) fail('usage: node server.mjs <config.json>');
  let config;
  try {
    config = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    fail(`cannot read config ${path}: ${err.message}`);
  }
  for (const key of ['host', 'port', 'issuer']) {
    if (config[key] === undefined) fail(`config is missing "${key}"`);
  }
  if (!Array.isArray(config.clients) || config.clients.length === 0) fail('config needs at least one client');
  if (!Array.isArray(config.users)) fail('config "users" must be a list');
  for (const user of config.users) {
    for (const key of ['username', 'password', 'sub']) {
      if (typeof user[key] !== 'string' || !user[key]) fail(`every user needs a string "${key}"`);
    }
  }
  return { title: 'Sign in', ...config };
}

const config = loadConfig(process.argv[2]);

// ---------------------------------------------------------------------------------------
// Users

function sha256(value) {
  return crypto.createHash('sha256').update(String(value), 'utf8').digest();
}

/** Returns the user whose username and password match, or undefined (constant-time compare). */
function checkPassword(username, password) {
  const user = config.users.find((u) => u.username === username);
  const expected = sha256(user ? user.password : crypto.randomBytes(16).toString('hex'));
  const ok = crypto.timingSafeEqual(expected, sha256(password ?? ''));
  return user && ok ? user : undefined;
}

async function findAccount(ctx, sub) {
  const user = config.users.find((u) => u.sub === sub);
  if (!user) return undefined;
  return {
    accountId: user.sub,
    // amr, acr, auth_time and sid come from the login session, not from here.
    async claims() {
      return {
        sub: user.sub,
        email: user.email,
        email_verified: user.email_verified ?? true,
        name: user.name,
        groups: user.groups ?? [],
        // A CI pipeline's claims (repository, ref, environment...), as a CI's OIDC issuer asserts them.
        ...(user.claims ?? {}),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------
// HTML

function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

const STYLE = `body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;padding:48px 16px;color:#1d2430}
main{max-width:340px;margin:0 auto;background:#fff;border-radius:8px;padding:24px 28px;box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.25rem;margin:0 0 16px}label{display:block;margin:12px 0 4px;font-weight:600}
input{width:100%;box-sizing:border-box;padding:8px;font-size:1rem;border:1px solid #aab;border-radius:4px}
button{margin-top:20px;width:100%;padding:10px;font-size:1rem;border:0;border-radius:4px;background:#2457c5;color:#fff;cursor:pointer}
.error{background:#fdecea;color:#8a1c12;border:1px solid #f5c2bc;border-radius:4px;padding:8px 10px}
.note{color:#556;font-size:.9rem}`;

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body><main>
${body}
</main></body>
</html>
`;
}

function loginPage(uid, { error, username, clientId } = {}) {
  const client = clientId ? `<p class="note">to continue to <strong>${esc(clientId)}</strong></p>` : '';
  const message = error ? `<p class="error" role="alert">${esc(error)}</p>` : '';
  return page(config.title, `<h1>${esc(config.title)}</h1>
${client}${message}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="username">Username</label>
<input id="username" name="username" value="${esc(username)}" required autofocus autocomplete="username">
<label for="password">Password</label>
<input id="password" name="password" type="password" required autocomplete="current-password">
<button type="submit">Sign in</button>
</form>`);
}

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  res.end(html);
}

// Replacements for oidc-provider's default pages, which load web fonts from the internet.

async function renderError(ctx, out) {
  ctx.type = 'html';
  const rows = Object.entries(out).map(([k, v]) => `<p><strong>${esc(k)}</strong>: ${esc(v)}</p>`).join('\n');
  ctx.body = page(`${config.title}: error`, `<h1>Something went wrong</h1>\n${rows}`);
}

async function logoutSource(ctx, form) {
  // The form already carries the xsrf token; add logout=yes and submit it at once, so that
  // RP-initiated logout ends the IdP session without an extra click (a button remains
  // for browsers without JavaScript).
  const autoForm = form.replace(
    '</form>',
    '<input type="hidden" name="logout" value="yes"/><noscript><button type="submit">Sign out</button></noscript></form>',
  );
  ctx.type = 'html';
  ctx.body = page(`${config.title}: sign out`, `<h1>Signing out…</h1>
${autoForm}
<script>document.getElementById('op.logoutForm').submit();</script>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page(`${config.title}: signed out`, `<h1>${esc(config.title)}</h1><p>You are signed out.</p>`);
}

// ---------------------------------------------------------------------------------------
// Provider

// An EC P-256 key (ES256): generated instantly. RSA key generation at start-up was seen to hang, rarely, here.
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256' };

const acrValues = [...new Set(config.users.map((u) => u.acr).filter(Boolean))];

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris ?? [],
    // OpenID Connect Back-Channel Logout: a logout token (with the session's sid) POSTed on sign-out.
    ...(c.backchannel_logout_uri
      ? { backchannel_logout_uri: c.backchannel_logout_uri, backchannel_logout_session_required: true }
      : {}),
    // client_secret_post is accepted too: oidc-provider treats the two secret methods alike.
    token_endpoint_auth_method: 'client_secret_basic',
    response_types: ['code'],
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'ES256',
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount,
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub', 'amr', 'acr', 'auth_time', 'sid', ...new Set(config.users.flatMap((u) => Object.keys(u.claims ?? {})))],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  acrValues,
  // Put the scoped claims (email, name, groups) in the ID token, not only in userinfo.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
  pkce: { required: () => true },
  clientBasedCORS: () => false,
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    backchannelLogout: { enabled: true },
  },
  renderError,
  // oidc-provider refuses to call loopback addresses (its guard against request forgery). This IdP calls only the
  // back-channel logout URIs of the clients in its own config, which here are all on loopback.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  ttl: {
    AccessToken: 3600,
    IdToken: 3600,
    Interaction: 600,
    Session: 8 * 3600,
    Grant: 8 * 3600,
  },
});

for (const event of [
  'server_error', 'authorization.error', 'grant.error', 'end_session.error',
  'userinfo.error', 'jwks.error', 'discovery.error', 'introspection.error', 'revocation.error',
  'backchannel.error',
]) {
  provider.on(event, (ctx, err) => {
    // Error messages and descriptions never carry credentials; request bodies are not logged.
    const description = err.error_description ? ` (${err.error_description})` : '';
    process.stderr.write(`oidc-idp: ${event}: ${err.message}${description}\n`);
    if (event === 'server_error' && err.stack) process.stderr.write(`${err.stack}\n`);
  });
}

// ---------------------------------------------------------------------------------------
// Interactions: our login page, automatic consent

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new errors.InvalidRequest('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function detailsFor(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction does not match the cookie');
  return details;
}

/** Grants what the client asked for, so the user never sees a consent screen. */
async function grantConsent(req, res, details) {
  const { prompt: { details: missing }, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function showInteraction(req, res, uid) {
  const details = await detailsFor(req, res, uid);
  switch (details.prompt.name) {
    case 'login':
      return send(res, 200, loginPage(uid, { clientId: details.params.client_id }));
    case 'consent':
      return grantConsent(req, res, details);
    default:
      return send(res, 400, page(config.title, '<h1>Unsupported sign-in step</h1>'));
  }
}

async function submitLogin(req, res, uid) {
  const details = await detailsFor(req, res, uid);
  if (details.prompt.name !== 'login') {
    return send(res, 400, page(config.title, '<h1>This sign-in step is already complete</h1>'));
  }
  const form = await readForm(req);
  const username = form.get('username') ?? '';
  const user = checkPassword(username, form.get('password'));
  if (!user) {
    return send(res, 401, loginPage(uid, {
      error: 'Wrong username or password.',
      username,
      clientId: details.params.client_id,
    }));
  }
  const login = { accountId: user.sub, amr: user.amr, acr: user.acr };
  return provider.interactionFinished(req, res, { login }, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------------------------------
// HTTP

const providerCallback = provider.callback();
const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/;

async function handle(req, res) {
  const { pathname } = new URL(req.url, 'http://idp.invalid');
  const match = INTERACTION.exec(pathname);
  if (!match) return providerCallback(req, res);

  const [, uid, login] = match;
  try {
    if (!login && req.method === 'GET') return await showInteraction(req, res, uid);
    if (login && req.method === 'POST') return await submitLogin(req, res, uid);
    res.setHeader('Allow', login ? 'POST' : 'GET');
    return send(res, 405, page(config.title, '<h1>Method not allowed</h1>'));
  } catch (err) {
    if (err instanceof errors.SessionNotFound) {
      return send(res, 400, page(config.title, `<h1>${esc(config.title)}</h1>
<p class="error">This sign-in has expired or was not started here. Go back to the application and sign in again.</p>`));
    }
    if (err instanceof errors.OIDCProviderError) {
      return send(res, err.status ?? 400, page(config.title, `<h1>Sign-in failed</h1><p>${esc(err.message)}</p>`));
    }
    process.stderr.write(`oidc-idp: interaction error: ${err.stack ?? err}\n`);
    return send(res, 500, page(config.title, '<h1>Internal error</h1>'));
  }
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`oidc-idp: unhandled error: ${err.stack ?? err}\n`);
    if (!res.headersSent) send(res, 500, page(config.title, '<h1>Internal error</h1>'));
    else res.destroy();
  });
});

server.on('error', (err) => fail(`cannot listen on ${config.host}:${config.port}: ${err.message}`));

server.listen(config.port, config.host, () => {
  process.stdout.write(`ready ${config.issuer}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
