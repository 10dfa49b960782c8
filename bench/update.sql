-- pgbench: the UPDATE limit. One single-row UPDATE per transaction on bench_users, as a
-- confirmation does to `users` (run with -D maxid=<rows in bench_users>).
\set id random(1, :maxid)
UPDATE bench_users SET confirmed = true, confirmed_on = now() WHERE id = :id;
