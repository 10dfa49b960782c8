-- pgbench: the INSERT limit. One single-row INSERT per transaction into bench_users, a copy of
-- the shape of `users` (same columns, types, defaults, primary key, unique email_key and the
-- mailbox_key index).
-- txid_current() makes every address unique.
INSERT INTO bench_users (email, email_key, confirmed, email_sent, registered_on, mailbox_key)
VALUES ('pgbench-' || :client_id || '-' || txid_current() || '@Example.com',
        'pgbench-' || :client_id || '-' || txid_current() || '@example.com',
        false, false, now(),
        'pgbench-' || :client_id || '-' || txid_current() || '@example.com');
