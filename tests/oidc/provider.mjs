// A real OpenID provider on loopback for OnLabel's single sign-on tests
// (tests/it/oidc.rs, tests/it/browser_oidc.rs) and demos: the certified
// `oidc-provider` package (installed by scripts/oidc-provider.sh), with our
// own login form instead of its development interactions, which accept any
// password.
//
//   node tests/oidc/provider.mjs PORT ACCOUNTS.json
//
// PORT 0 picks a free port. Once listening, the provider prints one line
//   oidc-provider listening on http://127.0.0.1:PORT
// on stdout (the issuer is that URL); the harness waits for it.
//
// ACCOUNTS.json:
//   { "client":   { "id": "...", "secret": "...", "redirect_uri": "http://127.0.0.1:8080/auth/oidc/callback" },
//     "accounts": [ { "id": "amy", "password": "...", "name": "Amy Reviewer",
//                     "email": "amy@example.test", "groups": ["onlabel-mlr"] } ] }
//
// The accounts are read again at every sign-in and every claims lookup, so a
// test changes someone's groups by rewriting the file. The client is read
// once, at start.
//
// What it issues: the authorization-code flow with PKCE required (S256),
// `prompt=login` and `max_age` honoured (the step-up of an e-signature), an
// ID token that always carries `auth_time` and, in the ID token itself,
// `name`, `preferred_username` (the account id), `email` and the `groups`
// claim (scope `groups`).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const [portArg, accountsPath] = process.argv.slice(2);
if (portArg === undefined || accountsPath === undefined) {
  console.error('usage: node provider.mjs PORT ACCOUNTS.json');
  process.exit(2);
}

function readConfig() {
  return JSON.parse(fs.readFileSync(accountsPath, 'utf8'));
}

function findAccountById(id) {
  return (readConfig().accounts || []).find((a) => a.id === id);
}

const config = readConfig();
if (!config.client || !config.client.id || !config.client.secret || !config.client.redirect_uri) {
  console.error(`${accountsPath}: "client" needs id, secret and redirect_uri`);
  process.exit(2);
}

// Escapes text for HTML element content and attribute values.
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

// The login form: plain HTML a browser test fills (#login, #password, #sign-in).
function loginPage(uid, { error, reauth, login }) {
  const heading = reauth ? 'Confirm it is you' : 'Sign in';
  const why = reauth
    ? '<p id="reauth">OnLabel asks you to enter your password again before you sign.</p>'
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test identity provider: ${heading}</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 24rem; margin: 3rem auto; padding: 0 1rem; color: #1d2733; }
  h1 { font-size: 1.4rem; } label { display: block; margin-top: .8rem; }
  input { width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }
  button { margin-top: 1rem; padding: .6rem 1.2rem; font-size: 1rem; }
  .error { color: #a4161a; } .idp { color: #555; font-size: .85rem; }
</style></head>
<body>
<p class="idp">Test identity provider (oidc-provider, loopback)</p>
<h1>${heading}</h1>
${why}
${error ? `<p class="error" id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label for="login">User</label>
  <input id="login" name="login" value="${esc(login || '')}" autofocus required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button id="sign-in" type="submit">Sign in</button>
</form>
</body></html>`;
}

function readBody(req, limit = 16 * 1024) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

function samePassword(a, b) {
  const x = crypto.createHash('sha256').update(String(a)).digest();
  const y = crypto.createHash('sha256').update(String(b)).digest();
  return crypto.timingSafeEqual(x, y);
}

const server = http.createServer();
server.listen(Number(portArg), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

  const provider = new Provider(issuer, {
    clients: [{
      client_id: config.client.id,
      client_secret: config.client.secret,
      redirect_uris: [config.client.redirect_uri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      // Every ID token says when the person last entered their password.
      require_auth_time: true,
    }],
    jwks: { keys: [{ ...signingKey, kid: 'test-provider', use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    // PKCE on every authorization request, S256 only.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    // Scope-based claims in the ID token itself, not only at userinfo.
    conformIdTokenClaims: false,
    // A first-party client: no consent screen; the grant is made on first use.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const found = await ctx.oidc.provider.Grant.find(grantId);
        if (found) return found;
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid profile email groups');
      await grant.save();
      return grant;
    },
    async findAccount(ctx, sub) {
      const account = findAccountById(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          // Read again: a test may have changed the groups since sign-in.
          const now = findAccountById(sub) || account;
          return {
            sub,
            name: now.name,
            preferred_username: now.id,
            email: now.email,
            email_verified: true,
            groups: now.groups || [],
          };
        },
      };
    },
  });

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    const m = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/);
    if (!m) {
      callback(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name !== 'login') {
        send(res, 400, `unexpected interaction prompt ${esc(details.prompt.name)}`);
        return;
      }
      const reasons = details.prompt.reasons || [];
      const reauth = Boolean(details.session?.accountId)
        || reasons.includes('login_prompt') || reasons.includes('max_age');
      if (req.method === 'GET' && !m[2]) {
        send(res, 200, loginPage(details.uid, { reauth }));
        return;
      }
      if (req.method === 'POST' && m[2]) {
        const form = new URLSearchParams(await readBody(req));
        const login = form.get('login') || '';
        const account = findAccountById(login);
        if (!account || !samePassword(form.get('password') || '', account.password)) {
          send(res, 200, loginPage(details.uid, { reauth, login, error: 'Wrong user or password.' }));
          return;
        }
        await provider.interactionFinished(req, res, {
          login: { accountId: account.id, amr: ['pwd'] },
        }, { mergeWithLastSubmission: false });
        return;
      }
      send(res, 405, 'method not allowed');
    } catch (err) {
      const status = err instanceof errors.SessionNotFound ? 400 : 500;
      send(res, status, `interaction failed: ${esc(err.message)}`);
    }
  });

  console.log(`oidc-provider listening on ${issuer}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
