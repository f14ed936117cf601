-- The record of admin changes: every change to issuers, clients, policies
-- and signing keys in audit_log, and every version of every policy in
-- policy_revisions. Both are written in the transaction of the change and
-- never hold a secret. Additive: no existing table changes.

create table audit_log (
    id      bigserial primary key,
    at      timestamptz not null default now(),
    actor   text not null,
    action  text not null,
    kind    text not null,
    name    text not null,
    version bigint,
    detail  jsonb
);

comment on table audit_log is 'Every admin change: who, when, what. Never a secret.';
comment on column audit_log.actor is 'token:<8 hex of the token''s SHA-256>, jwt:<sub> or system; never a credential.';
comment on column audit_log.detail is 'The resource as the admin API shows it (what was written, or what was deleted), or the consequence of a key change.';

create index audit_log_kind_name on audit_log (kind, name, id);

create table policy_revisions (
    id          bigserial primary key,
    policy_name text not null,
    version     bigint not null check (version > 0),
    action      text not null check (action in ('create', 'update', 'delete')),
    body        jsonb not null check (jsonb_typeof(body) = 'object'),
    actor       text not null,
    at          timestamptz not null default now()
);

comment on table policy_revisions is 'Every version of every policy, kept after the policy is deleted.';
comment on column policy_revisions.body is 'The whole policy as written (name and audience included, without version and timestamps).';

create index policy_revisions_policy_name on policy_revisions (policy_name, id);

-- The policies that exist already start their history at their current
-- version.
insert into policy_revisions (policy_name, version, action, body, actor, at)
select name, version, case when version = 1 then 'create' else 'update' end,
       body || jsonb_build_object('name', name, 'audience', audience), 'system', updated_at
from policies
order by updated_at, name;

---- create above / drop below ----

drop table policy_revisions;
drop table audit_log;
