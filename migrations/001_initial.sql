-- Claimbridge's configuration: trusted issuers, clients, policies and
-- signing keys. Every row of the first three carries a version (1 on create,
-- +1 on every update) for optimistic concurrency and audit.

create table issuers (
    name        text primary key,
    issuer_url  text not null,
    audiences   text[] not null,
    algorithms  text[] not null,
    token_types text[] not null,
    jwks_uri    text not null default '',
    version     bigint not null check (version > 0),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint issuers_issuer_url_key unique (issuer_url)
);

comment on table issuers is 'Trusted identity providers whose tokens may be exchanged.';
comment on column issuers.issuer_url is 'The exact "iss" value of the issuer''s tokens.';

create table clients (
    id          text primary key,
    description text not null default '',
    secret_hash bytea not null check (octet_length(secret_hash) > 0),
    version     bigint not null check (version > 0),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

comment on table clients is 'Gateways that exchange tokens.';
comment on column clients.secret_hash is 'salt || HMAC-SHA-256(salt, secret); the secret itself is never stored.';

create table policies (
    name       text primary key,
    audience   text not null,
    body       jsonb not null check (jsonb_typeof(body) = 'object'),
    version    bigint not null check (version > 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint policies_audience_key unique (audience)
);

comment on table policies is 'What each audience receives in the tokens minted for it.';
comment on column policies.body is 'The policy as JSON, without version and timestamps; name and audience are authoritative in their columns.';

create table signing_keys (
    kid          text primary key,
    alg          text not null,
    state        text not null check (state in ('next', 'active', 'retired')),
    public_jwk   jsonb not null,
    sealed       bytea not null,
    kek_id       text not null,
    created_at   timestamptz not null default now(),
    activated_at timestamptz,
    retired_at   timestamptz
);

comment on table signing_keys is 'Token signing keys; the private part is sealed under a key-encryption key.';
comment on column signing_keys.sealed is 'nonce || AES-256-GCM(PKCS#8 private key), the kid as additional data.';

-- At most one key signs at a time.
create unique index signing_keys_one_active on signing_keys (state) where state = 'active';

---- create above / drop below ----

drop table signing_keys;
drop table policies;
drop table clients;
drop table issuers;
