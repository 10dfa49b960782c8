//! The home page's "Registered Users" table (`SHOW_USERS`), rendered once for every request
//! waiting for it.
//!
//! The table is the same for every visitor, and reading and rendering its rows is most of the
//! page's cost. Requests for it go through a [`Coalescer`]: one query and one render at a time,
//! and every request that arrived meanwhile shares the next one. Nothing is cached: each request
//! gets a table read after it arrived, so it shows every registration committed before it. Under
//! a flood of `GET /` the page makes one query at a time, not one per request.

use std::sync::{Arc, OnceLock};

use mailer::Templates;
use serde::Serialize;
use store::UserStore;
use store::batch::Coalescer;

use crate::AppError;

/// Most requests one render answers (a bound on the batch's bookkeeping, not on sharing: the
/// requests beyond it take the next render).
const MAX_SHARED: usize = 1024;

/// The template of the table (a fragment: the page includes it as it is).
const TEMPLATE: &str = "web/_users.html";

/// See the module docs.
pub(crate) struct UsersTable {
    users: Arc<dyn UserStore>,
    pages: Templates,
    limit: u64,
    /// Spawned on first use (it needs the runtime).
    renders: OnceLock<Coalescer<(), Result<Arc<str>, AppError>>>,
}

impl std::fmt::Debug for UsersTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsersTable")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
struct UserRow {
    id: i64,
    email: String,
    email_sent: &'static str,
    confirmed: &'static str,
}

impl From<domain::User> for UserRow {
    fn from(user: domain::User) -> Self {
        // The tutorial's Jinja printed Python booleans.
        let yes_no = |b: bool| if b { "True" } else { "False" };
        Self {
            id: user.id.0,
            email: user.email.into_string(),
            email_sent: yes_no(user.email_sent),
            confirmed: yes_no(user.confirmed),
        }
    }
}

#[derive(Debug, Serialize)]
struct TableView {
    users: Vec<UserRow>,
}

impl UsersTable {
    /// The table of the newest `limit` users of `users`, rendered with `pages`.
    pub(crate) fn new(users: Arc<dyn UserStore>, pages: Templates, limit: u64) -> Self {
        Self {
            users,
            pages,
            limit,
            renders: OnceLock::new(),
        }
    }

    /// The table's HTML, read and rendered after this call was made.
    pub(crate) async fn render(&self) -> Result<Arc<str>, AppError> {
        let renders = self.renders.get_or_init(|| {
            let (users, pages, limit) = (Arc::clone(&self.users), self.pages.clone(), self.limit);
            Coalescer::spawn(MAX_SHARED, move |calls: Vec<()>| {
                let (users, pages) = (Arc::clone(&users), pages.clone());
                async move {
                    let table = render_table(users.as_ref(), &pages, limit).await;
                    calls
                        .iter()
                        .map(|()| match &table {
                            Ok(html) => Ok(Arc::clone(html)),
                            Err(error) => Err(error.share()),
                        })
                        .collect()
                }
            })
        });
        renders
            .call(())
            .await
            .map_err(|stopped| AppError::Store(stopped.into()))?
    }
}

async fn render_table(
    users: &dyn UserStore,
    pages: &Templates,
    limit: u64,
) -> Result<Arc<str>, AppError> {
    let view = TableView {
        users: users
            .recent_users(limit)
            .await?
            .into_iter()
            .map(UserRow::from)
            .collect(),
    };
    Ok(pages.render(TEMPLATE, &view)?.into())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use domain::{EmailAddress, User, UserId};
    use store::MockUserStore;

    use super::*;

    fn user(id: i64, email: &str) -> User {
        User {
            id: UserId(id),
            email: EmailAddress::parse(email).unwrap(),
            confirmed: false,
            email_sent: true,
            registered_on: Utc::now(),
            confirmed_on: None,
        }
    }

    fn table(users: MockUserStore) -> Arc<UsersTable> {
        let pages = Templates::new(crate::PAGE_TEMPLATES, None);
        Arc::new(UsersTable::new(Arc::new(users), pages, 50))
    }

    /// `n` renders started together (each on a task of its own), their answers in order.
    async fn render_at_once(table: &Arc<UsersTable>, n: usize) -> Vec<Result<Arc<str>, AppError>> {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let table = Arc::clone(table);
                tokio::spawn(async move { table.render().await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        answers
    }

    /// Requests that arrive while a read is running share the next one: five at once make one
    /// query, and each gets the whole table.
    #[tokio::test]
    async fn requests_waiting_at_once_share_one_read() {
        let mut users = MockUserStore::new();
        users
            .expect_recent_users()
            .with(mockall::predicate::eq(50))
            .times(1)
            .returning(|_| Ok(vec![user(2, "b@example.com"), user(1, "a&x@example.com")]));
        let table = table(users);
        for answer in render_at_once(&table, 5).await {
            let html = answer.unwrap();
            assert!(html.contains("<td>2</td><td>b@example.com</td><td>True</td><td>False</td>"));
            assert!(html.contains("a&amp;x@example.com"), "{html}");
        }
    }

    /// A request made after a read has finished gets a read of its own (nothing is cached).
    #[tokio::test]
    async fn a_later_request_reads_again() {
        let mut users = MockUserStore::new();
        let mut seq = mockall::Sequence::new();
        users
            .expect_recent_users()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(vec![]));
        users
            .expect_recent_users()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(vec![user(1, "a@example.com")]));
        let table = table(users);
        assert!(table.render().await.unwrap().contains("No users yet."));
        assert!(table.render().await.unwrap().contains("a@example.com"));
    }

    /// A failed read fails every request that shared it, each with the same error.
    #[tokio::test]
    async fn a_failed_read_fails_each_request_that_shared_it() {
        let mut users = MockUserStore::new();
        users
            .expect_recent_users()
            .times(1)
            .returning(|_| Err(store::StoreError::Unavailable("down".into())));
        let table = table(users);
        for answer in render_at_once(&table, 3).await {
            match answer {
                Err(AppError::Store(error)) => assert!(error.is_unavailable(), "{error}"),
                other => panic!("expected the store's error, got {other:?}"),
            }
        }
    }
}
