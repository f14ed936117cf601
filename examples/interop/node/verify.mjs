// Verifies a Claimbridge access token the way a Node.js upstream should, with
// the jose package, and prints its claims as JSON.
//
//   node verify.mjs JWKS_URL ISSUER AUDIENCE TOKEN
//
// Exits 1 with the reason on stderr when the token is refused.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksURL, issuer, audience, token] = process.argv.slice(2);
if (!token) {
  console.error('usage: node verify.mjs JWKS_URL ISSUER AUDIENCE TOKEN');
  process.exit(2);
}

// Create the key set once per process: it caches the keys and refetches them
// on an unknown kid, at most once per cooldownDuration (30 s by default).
const jwks = createRemoteJWKSet(new URL(jwksURL));

try {
  const { payload } = await jwtVerify(token, jwks, {
    issuer,                                         // exact match with iss
    audience,                                       // aud must contain ours
    algorithms: ['ES256', 'RS256', 'PS256', 'EdDSA'], // never none or HS*
    typ: 'at+jwt',                                  // RFC 9068 access tokens only
    clockTolerance: 30,                             // seconds of skew on exp/nbf
    requiredClaims: ['exp', 'sub'],
  });
  console.log(JSON.stringify(payload));
} catch (err) {
  console.error(`token refused: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
}
