//! The home page's "Registered Users" table (`SHOW_USERS`), rendered once for every request
//! waiting for it.
//!
//! The table is the same for every visitor, and reading and rendering its rows is most of the
//! page's cost. Requests for it go through a [`Coalescer`]: one query and one render at a time,
//! and every request that arrived meanwhile shares the next one. No rows are cached: each request
//! gets a table read after it arrived, so it shows every registration committed before it. Under
//! a flood of `GET /` the page makes one query at a time, not one per request.
//!
//! The render is a function of the rows read and the template's source only, so when a read
//! returns the same rows as the previous one (and the template is unchanged) the previous HTML
//! is used again instead of rendering the same table a second time.

use std::sync::{Arc, Mutex, OnceLock};

use domain::UserSummary;
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
struct UserRow<'a> {
    id: i64,
    email: &'a str,
    email_sent: &'static str,
    confirmed: &'static str,
}

impl<'a> From<&'a UserSummary> for UserRow<'a> {
    fn from(user: &'a UserSummary) -> Self {
        // The tutorial's Jinja printed Python booleans.
        let yes_no = |b: bool| if b { "True" } else { "False" };
        Self {
            id: user.id.0,
            email: user.email.as_str(),
            email_sent: yes_no(user.email_sent),
            confirmed: yes_no(user.confirmed),
        }
    }
}

#[derive(Debug, Serialize)]
struct TableView<'a> {
    users: Vec<UserRow<'a>>,
}

/// The last table rendered and what it was rendered from.
#[derive(Debug)]
struct Rendered {
    users: Vec<UserSummary>,
    source: String,
    html: Arc<str>,
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
            let last = Arc::new(Mutex::new(None));
            Coalescer::spawn(MAX_SHARED, move |calls: Vec<()>| {
                let (users, pages, last) = (Arc::clone(&users), pages.clone(), Arc::clone(&last));
                async move {
                    let table = render_table(users.as_ref(), &pages, limit, &last).await;
                    calls
                        .iter()
                        .map(|()| match &table {
                            Ok(html) => Ok(Arc::clone(html)),
                            Err(error) => Err(error.clone()),
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

/// Reads the table's rows and renders them, or returns the previous HTML if it was rendered from
/// the same rows and template source (`last`; batches run one at a time, so the lock is never
/// contended).
async fn render_table(
    users: &dyn UserStore,
    pages: &Templates,
    limit: u64,
    last: &Mutex<Option<Rendered>>,
) -> Result<Arc<str>, AppError> {
    let users = users.recent_users(limit).await?;
    let source = pages.source(TEMPLATE)?;
    let mut last = last
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(rendered) = last.as_ref()
        && rendered.users == users
        && rendered.source == source
    {
        return Ok(Arc::clone(&rendered.html));
    }
    let view = TableView {
        users: users.iter().map(UserRow::from).collect(),
    };
    let html: Arc<str> = pages.render(TEMPLATE, &view)?.into();
    *last = Some(Rendered {
        users,
        source,
        html: Arc::clone(&html),
    });
    Ok(html)
}

#[cfg(test)]
mod tests {
    use domain::{EmailAddress, UserId};
    use store::MockUserStore;

    use super::*;

    fn user(id: i64, email: &str) -> UserSummary {
        UserSummary {
            id: UserId(id),
            email: EmailAddress::parse(email).unwrap(),
            confirmed: false,
            email_sent: true,
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

    /// A read that returns the rows of the previous one uses its HTML again (the same
    /// allocation); a changed row, a new user or an edited template renders anew.
    #[tokio::test]
    async fn the_same_rows_reuse_the_previous_html_and_any_change_renders_anew() {
        let confirmed = |mut user: UserSummary| {
            user.confirmed = true;
            user
        };
        let (a, b) = (user(1, "a@example.com"), user(2, "b@example.com"));
        let reads = [
            vec![a.clone()],
            vec![a.clone()],
            vec![confirmed(a.clone())],
            vec![b.clone(), confirmed(a.clone())],
            vec![b.clone(), confirmed(a.clone())],
            vec![b.clone(), confirmed(a.clone())],
        ];
        let mut users = MockUserStore::new();
        let mut seq = mockall::Sequence::new();
        for read in reads {
            users
                .expect_recent_users()
                .times(1)
                .in_sequence(&mut seq)
                .return_once(move |_| Ok(read));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        let override_file = dir.path().join("web/_users.html");
        std::fs::write(
            &override_file,
            crate::PAGE_TEMPLATES
                .iter()
                .find(|(name, _)| *name == TEMPLATE)
                .unwrap()
                .1,
        )
        .unwrap();
        let pages = Templates::new(crate::PAGE_TEMPLATES, Some(dir.path().to_path_buf()));
        let table = Arc::new(UsersTable::new(Arc::new(users), pages, 50));

        let first = table.render().await.unwrap();
        let same = table.render().await.unwrap();
        assert!(Arc::ptr_eq(&first, &same), "same rows: rendered again");
        let changed = table.render().await.unwrap();
        assert!(!Arc::ptr_eq(&same, &changed));
        assert!(first.contains("<td>1</td><td>a@example.com</td><td>True</td><td>False</td>"));
        assert!(changed.contains("<td>1</td><td>a@example.com</td><td>True</td><td>True</td>"));
        let added = table.render().await.unwrap();
        assert!(
            added.contains("<td>2</td><td>b@example.com</td>"),
            "{added}"
        );
        assert!(Arc::ptr_eq(&added, &table.render().await.unwrap()));
        std::fs::write(
            &override_file,
            "{% for user in users %}[{{ user.email }}]{% endfor %}",
        )
        .unwrap();
        assert_eq!(
            &*table.render().await.unwrap(),
            "[b@example.com][a@example.com]"
        );
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
