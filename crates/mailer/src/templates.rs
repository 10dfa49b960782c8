//! Email and page templates on minijinja, embedded in the binary with an optional override
//! directory.
//!
//! A template named `confirm/body.html` is looked up first in the override directory (if one is
//! configured, so operators can restyle without rebuilding; an edited file is used from its next
//! render on; a file added for a template already in use only after a restart), then in the
//! embedded set. Files ending in `.html` are HTML-escaped automatically;
//! `.txt` files are not. Undefined variables are errors, so a typo fails a test instead of
//! sending a blank.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior, path_loader, value::Serde};
use serde::Serialize;

/// A template that could not be found, parsed or rendered: its name, and what the template
/// engine said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {name}: {reason}")]
pub struct TemplateError {
    /// The template's name (`email/confirm/body.html`).
    pub name: String,
    /// What minijinja reported.
    pub reason: String,
}

impl TemplateError {
    fn new(name: &str, error: &minijinja::Error) -> Self {
        Self {
            name: name.to_owned(),
            reason: error.to_string(),
        }
    }
}

/// The three parts of a rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, surrounding whitespace trimmed, inner line breaks folded to spaces.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// `None` when the message has no `body.html` template.
    pub html: Option<String>,
}

/// A set of templates: embedded sources plus an optional override directory.
#[derive(Debug, Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl Templates {
    /// Templates from `(name, source)` pairs, overridable from `override_dir`.
    pub fn new(embedded: &[(&'static str, &'static str)], override_dir: Option<PathBuf>) -> Self {
        let embedded: HashMap<&'static str, &'static str> = embedded.iter().copied().collect();
        let from_dir = override_dir.map(path_loader);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_loader(move |name| {
            if let Some(load) = &from_dir
                && let Some(source) = load(name)?
            {
                return Ok(Some(source));
            }
            Ok(embedded
                .get(name)
                .map(|s| minijinja::TemplateSource::new(*s)))
        });
        Self { env: Arc::new(env) }
    }

    /// Whether a template of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// The source `name` is rendered from now: the override file's if there is one (it changes
    /// when the file is edited), else the embedded one.
    pub fn source(&self, name: &str) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .map(|template| template.source().to_owned())
            .map_err(|error| TemplateError::new(name, &error))
    }

    /// Renders one template with a serialisable context.
    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, TemplateError> {
        let wrap = |error| TemplateError::new(name, &error);
        self.env
            .get_template(name)
            .map_err(wrap)?
            .render(Serde(ctx))
            .map_err(wrap)
    }

    /// Renders `<message>/subject.txt`, `<message>/body.txt` and, if present,
    /// `<message>/body.html`.
    pub fn render_email(
        &self,
        message: &str,
        ctx: &impl Serialize,
    ) -> Result<RenderedEmail, TemplateError> {
        let subject = self.render(&format!("{message}/subject.txt"), ctx)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = self.render(&format!("{message}/body.txt"), ctx)?;
        let html_name = format!("{message}/body.html");
        let html = if self.has(&html_name) {
            Some(self.render(&html_name, ctx)?)
        } else {
            None
        };
        Ok(RenderedEmail {
            subject,
            text,
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SET: &[(&str, &str)] = &[
        ("hello/subject.txt", "  Hello\n {{ name }}  "),
        ("hello/body.txt", "Hi {{ name }}, go to {{ url }}"),
        (
            "hello/body.html",
            "<p>Hi {{ name }}, <a href=\"{{ url }}\">go</a></p>",
        ),
        ("plain/subject.txt", "Plain"),
        ("plain/body.txt", "only text"),
    ];

    #[test]
    fn renders_all_parts_and_escapes_only_html() {
        let t = Templates::new(SET, None);
        let got = t
            .render_email(
                "hello",
                &json!({"name": "<b>&\"x\"</b>", "url": "http://e/?a=1&b=2"}),
            )
            .unwrap();
        assert_eq!(got.subject, "Hello <b>&\"x\"</b>");
        assert_eq!(got.text, "Hi <b>&\"x\"</b>, go to http://e/?a=1&b=2");
        assert_eq!(
            got.html.unwrap(),
            "<p>Hi &lt;b&gt;&amp;&quot;x&quot;&lt;&#x2f;b&gt;, <a href=\"http:&#x2f;&#x2f;e&#x2f;?a=1&amp;b=2\">go</a></p>"
        );
        assert_eq!(t.render_email("plain", &json!({})).unwrap().html, None);
    }

    #[test]
    fn missing_variable_or_template_is_an_error() {
        let t = Templates::new(SET, None);
        assert!(t.render_email("hello", &json!({"name": "x"})).is_err());
        assert!(t.render_email("nope", &json!({})).is_err());
    }

    #[test]
    fn directory_overrides_embedded_templates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hello")).unwrap();
        std::fs::write(dir.path().join("hello/body.txt"), "Custom {{ name }}").unwrap();
        let t = Templates::new(SET, Some(dir.path().to_path_buf()));
        let got = t
            .render_email("hello", &json!({"name": "N", "url": "u"}))
            .unwrap();
        assert_eq!(got.text, "Custom N");
        assert_eq!(got.subject, "Hello N");
    }

    /// An edited override file is rendered from at once, and `source` says which text that is
    /// (a different size, so the check does not depend on the clock's resolution).
    #[test]
    fn an_edited_override_is_picked_up_and_source_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("page.html");
        std::fs::write(&file, "First {{ name }}").unwrap();
        let t = Templates::new(
            &[("page.html", "Embedded"), ("other.html", "Other")],
            Some(dir.path().to_path_buf()),
        );
        assert_eq!(t.source("page.html").unwrap(), "First {{ name }}");
        assert_eq!(t.source("other.html").unwrap(), "Other");
        assert_eq!(
            t.render("page.html", &json!({"name": "N"})).unwrap(),
            "First N"
        );
        std::fs::write(&file, "Edited again {{ name }}").unwrap();
        assert_eq!(t.source("page.html").unwrap(), "Edited again {{ name }}");
        assert_eq!(
            t.render("page.html", &json!({"name": "N"})).unwrap(),
            "Edited again N"
        );
        assert!(t.source("missing.html").is_err());
        // A file added after its template was first used is not (the embedded one stays).
        std::fs::write(dir.path().join("other.html"), "Added later").unwrap();
        assert_eq!(t.source("other.html").unwrap(), "Other");
    }
}
