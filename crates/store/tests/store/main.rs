//! The store against real databases: SQLite always, PostgreSQL when `TEST_DATABASE_URL` is set.
//! Every test in `accounts`, `users`, `codes`, `feedback`, `reminders`, `mailbox`, `messages`, `retention`, `schema` and `webhooks` runs once per backend, as
//! `<module>::sqlite::<name>` and `<module>::postgres::<name>`. `tls` runs on a PostgreSQL that
//! takes TLS connections only, when `TEST_DATABASE_TLS_URL` is set.

// `cfg(test)` (always true here) tells clippy that these helpers are test code, where the
// workspace allows `unwrap`, `panic!` and printing.
#[cfg(test)]
mod accounts;
#[cfg(test)]
mod codes;
#[cfg(test)]
mod common;
#[cfg(test)]
mod feedback;
#[cfg(test)]
mod mailbox;
#[cfg(test)]
mod messages;
#[cfg(test)]
mod reminders;
#[cfg(test)]
mod retention;
#[cfg(test)]
mod schema;
#[cfg(test)]
mod tls;
#[cfg(test)]
mod users;
#[cfg(test)]
mod webhooks;
