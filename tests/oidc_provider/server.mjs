// A real OpenID provider (panva/oidc-provider) on 127.0.0.1 for the console's OIDC tests.
//
// Started by tests/support/oidc_provider.py with one JSON argument:
//   {"port": 0, "clients": [{client_id, redirect_uris}], "accounts": {sub: {roles, amr}}}
// It prints "listening <issuer>" once it takes connections.  Its login and consent pages
// are the package's development interactions: any login name, any password.
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const accounts = config.accounts ?? {};

const server = http.createServer();
server.listen(config.port ?? 0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: config.clients.map((client) => ({
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      ...client,
    })),
    claims: { openid: ['sub', 'roles', 'amr'] },
    conformIdTokenClaims: false,
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, roles: accounts[id]?.roles ?? [] };
        },
      };
    },
    ttl: { AuthorizationCode: 60, IdToken: config.id_token_ttl ?? 300 },
  });
  // The development login page asserts no authentication method; an account's `amr`
  // (e.g. ["pwd", "otp"]) stands for the second factor a real provider would ask for.
  const finished = provider.interactionFinished.bind(provider);
  provider.interactionFinished = (req, res, result, options) => {
    const amr = result.login && accounts[result.login.accountId]?.amr;
    return finished(req, res, amr ? { ...result, login: { ...result.login, amr } } : result, options);
  };
  server.on('request', provider.callback());
  process.stdout.write(`listening ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
