//! Email and page templates on minijinja, embedded in the binary with an optional override
//! directory.
//!
//! A template named `confirm/body.html` is looked up first in the override directory (if one is
//! configured, so operators can restyle without rebuilding; an edited file is used from its next
//! render on; a file added for a template already in use only after a restart), then in the
//! embedded set. Rendered for a locale ([`Templates::render_in`]), `<locale>/confirm/body.html`
//! in the override directory comes first.
//!
//! Localized templates ([`Templates::localized`]) have a `t(id, name=value, …)` function giving
//! message `id` of the [`Catalog`] in the render's `locale`. In an HTML template its result is
//! markup (messages may hold tags) and its arguments are escaped, unless they are markup the
//! template made (`{% set link %}<a href="…">…</a>{% endset %}`). Files ending in `.html` are HTML-escaped automatically;
//! `.txt` files are not. Undefined variables are errors, so a typo fails a test instead of
//! sending a blank.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{AutoEscape, Environment, HtmlEscape, State, UndefinedBehavior, path_loader};
use serde::Serialize;

use crate::i18n::{Arg, Catalog};

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
    catalog: Option<Arc<Catalog>>,
    /// Whether there is an override directory (where per-locale templates can be).
    overridable: bool,
}

/// The templates' `t(id, name=value, …)`: message `id` in the render's `locale`.
fn translate(
    catalog: &Catalog,
    state: &State<'_, '_>,
    id: &str,
    kwargs: Kwargs,
) -> Result<Value, minijinja::Error> {
    let html = matches!(state.auto_escape(), AutoEscape::Html);
    let mut args = Vec::new();
    for name in kwargs.args() {
        let value: Value = kwargs.get(name)?;
        let arg = match value.as_i64() {
            Some(n) if value.kind() == minijinja::value::ValueKind::Number => Arg::Number(n),
            // Markup made by the template itself (`{% set link %}<a …>{% endset %}`) stays.
            _ if html && !value.is_safe() => Arg::Text(HtmlEscape(&value.to_string()).to_string()),
            _ => Arg::Text(value.to_string()),
        };
        args.push((name, arg));
    }
    let locale = state.lookup("locale");
    let locale = locale.as_ref().and_then(Value::as_str).unwrap_or("");
    let text = catalog.format(locale, id, &args);
    Ok(if html {
        Value::from_safe_string(text)
    } else {
        Value::from(text)
    })
}

impl Templates {
    /// Templates from `(name, source)` pairs, overridable from `override_dir`.
    pub fn new(embedded: &[(&'static str, &'static str)], override_dir: Option<PathBuf>) -> Self {
        Self::build(embedded, None, override_dir)
    }

    /// [`Self::new`], with a `t()` function giving the messages of `catalog` (see the module's
    /// documentation).
    pub fn localized(
        embedded: &[(&'static str, &'static str)],
        catalog: Catalog,
        override_dir: Option<PathBuf>,
    ) -> Self {
        Self::build(embedded, Some(Arc::new(catalog)), override_dir)
    }

    fn build(
        embedded: &[(&'static str, &'static str)],
        catalog: Option<Arc<Catalog>>,
        override_dir: Option<PathBuf>,
    ) -> Self {
        let overridable = override_dir.is_some();
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
        if let Some(catalog) = &catalog {
            let catalog = Arc::clone(catalog);
            env.add_function(
                "t",
                move |state: &State<'_, '_>, id: &str, kwargs: Kwargs| {
                    translate(&catalog, state, id, kwargs)
                },
            );
        }
        Self {
            env: Arc::new(env),
            catalog,
            overridable,
        }
    }

    /// The message catalog of localized templates.
    pub fn catalog(&self) -> Option<&Catalog> {
        self.catalog.as_deref()
    }

    /// Message `id` in `locale` (the id itself without a catalog, or when no locale has it).
    pub fn message(&self, locale: &str, id: &str, args: &[(&str, Arg)]) -> String {
        match &self.catalog {
            Some(catalog) => catalog.format(locale, id, args),
            None => id.to_owned(),
        }
    }

    /// The template to render `name` from in `locale`: the override directory's
    /// `<locale>/<name>` if there is one, else `name`.
    fn name_in(&self, locale: &str, name: &str) -> String {
        if self.overridable && !locale.is_empty() {
            let localized = format!("{locale}/{name}");
            if self.env.get_template(&localized).is_ok() {
                return localized;
            }
        }
        name.to_owned()
    }

    /// Renders `name` (or its `<locale>/` override) for `locale`: the context gets `locale`,
    /// which `t()` uses.
    pub fn render_in(
        &self,
        locale: &str,
        name: &str,
        ctx: &impl Serialize,
    ) -> Result<String, TemplateError> {
        let chosen = self.name_in(locale, name);
        let wrap = |error| TemplateError::new(&chosen, &error);
        let ctx = minijinja::context! { locale => locale, ..Value::from(Serde(ctx)) };
        self.env
            .get_template(&chosen)
            .map_err(wrap)?
            .render(ctx)
            .map_err(wrap)
    }

    /// [`Self::render_email`] for `locale` (each part as [`Self::render_in`] renders it).
    pub fn render_email_in(
        &self,
        locale: &str,
        message: &str,
        ctx: &impl Serialize,
    ) -> Result<RenderedEmail, TemplateError> {
        let subject = self.render_in(locale, &format!("{message}/subject.txt"), ctx)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = self.render_in(locale, &format!("{message}/body.txt"), ctx)?;
        let html_name = format!("{message}/body.html");
        let html = if self.has(&html_name)
            || (!locale.is_empty() && self.has(&format!("{locale}/{html_name}")))
        {
            Some(self.render_in(locale, &html_name, ctx)?)
        } else {
            None
        };
        Ok(RenderedEmail {
            subject,
            text,
            html,
        })
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

    /// Renders one template with a serialisable context (with no locale: see
    /// [`Self::render_in`]).
    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, TemplateError> {
        self.render_in("", name, ctx)
    }

    /// Renders `<message>/subject.txt`, `<message>/body.txt` and, if present,
    /// `<message>/body.html` (with no locale: see [`Self::render_email_in`]).
    pub fn render_email(
        &self,
        message: &str,
        ctx: &impl Serialize,
    ) -> Result<RenderedEmail, TemplateError> {
        self.render_email_in("", message, ctx)
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
    fn localized_templates_translate_escape_arguments_and_take_locale_overrides() {
        use crate::i18n::MessageFile;
        const FILES: &[MessageFile] = &[
            MessageFile {
                locale: "en",
                file: "m.ftl",
                source: "greet = Hello <b>{ $name }</b>\nsubject = Welcome\n",
            },
            MessageFile {
                locale: "zh-CN",
                file: "m.ftl",
                source: "greet = 你好 <b>{ $name }</b>\nsubject = 欢迎\n",
            },
        ];
        const SET: &[(&str, &str)] = &[
            ("m/subject.txt", "{{ t('subject') }}"),
            ("m/body.txt", "{{ t('greet', name=name) }}"),
            ("m/body.html", "<p>{{ t('greet', name=name) }}</p>"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let catalog = || Catalog::new(FILES, None).unwrap();
        let t = Templates::localized(SET, catalog(), Some(dir.path().to_path_buf()));
        let ctx = json!({"name": "<i>A&B</i>"});
        let en = t.render_email_in("en", "m", &ctx).unwrap();
        assert_eq!(en.subject, "Welcome");
        assert_eq!(en.text, "Hello <b><i>A&B</i></b>");
        assert_eq!(
            en.html.unwrap(),
            "<p>Hello <b>&lt;i&gt;A&amp;B&lt;&#x2f;i&gt;</b></p>"
        );
        let zh = t.render_email_in("zh-CN", "m", &ctx).unwrap();
        assert_eq!(zh.subject, "欢迎");
        assert_eq!(zh.text, "你好 <b><i>A&B</i></b>");
        // A per-locale override, for that locale only.
        std::fs::create_dir_all(dir.path().join("zh-CN/m")).unwrap();
        std::fs::write(dir.path().join("zh-CN/m/body.txt"), "定制 {{ name }}").unwrap();
        let t = Templates::localized(SET, catalog(), Some(dir.path().to_path_buf()));
        assert_eq!(
            t.render_email_in("zh-CN", "m", &ctx).unwrap().text,
            "定制 <i>A&B</i>"
        );
        assert_eq!(
            t.render_email_in("en", "m", &ctx).unwrap().text,
            "Hello <b><i>A&B</i></b>"
        );
        assert_eq!(t.message("zh-CN", "subject", &[]), "欢迎");
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
