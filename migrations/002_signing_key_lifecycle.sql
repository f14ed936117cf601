-- The signing key lifecycle: next → active → retired → removed, plus
-- revoked for an emergency revoke; one active and one next key per
-- algorithm; the planned dates of each step. Additive: existing rows keep
-- their meaning (their new dates are NULL) and a binary of the first schema
-- still reads and signs with them.

alter table signing_keys drop constraint signing_keys_state_check;
alter table signing_keys add constraint signing_keys_state_check
    check (state in ('next', 'active', 'retired', 'removed', 'revoked'));

alter table signing_keys
    add column activates_at timestamptz,
    add column remove_after timestamptz,
    add column removed_at   timestamptz;

comment on column signing_keys.created_at is 'When the key was generated and published in the JWKS.';
comment on column signing_keys.activates_at is 'Next keys: the earliest time the key may sign (published + lead time).';
comment on column signing_keys.activated_at is 'When the key started signing.';
comment on column signing_keys.retired_at is 'When the key stopped signing; it stays published until remove_after.';
comment on column signing_keys.remove_after is 'Retired keys: when every token the key signed has expired (retired + grace).';
comment on column signing_keys.removed_at is 'Removed and revoked keys: when the key left the JWKS. Such rows keep the public key only.';
comment on column signing_keys.sealed is 'nonce || AES-256-GCM(PKCS#8 private key), the kid as additional data; empty once the key can never sign again.';
comment on column signing_keys.kek_id is 'The KEK that sealed the private key; empty when sealed is.';

-- One active and one next key per algorithm (the default algorithm and
-- those policies may choose).
drop index signing_keys_one_active;
create unique index signing_keys_one_active on signing_keys (alg) where state = 'active';
create unique index signing_keys_one_next on signing_keys (alg) where state = 'next';

---- create above / drop below ----

drop index signing_keys_one_next;
drop index signing_keys_one_active;
delete from signing_keys where state in ('removed', 'revoked');
create unique index signing_keys_one_active on signing_keys (state) where state = 'active';
alter table signing_keys
    drop column removed_at,
    drop column remove_after,
    drop column activates_at;
alter table signing_keys drop constraint signing_keys_state_check;
alter table signing_keys add constraint signing_keys_state_check
    check (state in ('next', 'active', 'retired'));
