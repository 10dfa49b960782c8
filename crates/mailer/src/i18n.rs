//! Texts per language, with Project Fluent: a [`Catalog`] of messages for each locale, used by
//! the templates' `t()` function (see [`Templates::localized`](crate::Templates::localized)).
//!
//! Each locale's messages come from embedded `.ftl` sources; an override directory may hold
//! `locales/<locale>/<file>` with messages that replace (or add to) the embedded ones. A message
//! missing in a locale falls back to the first locale's (the default), then to its id, with a
//! warning; the service's tests check that no locale misses any.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use fluent_syntax::ast::Entry;
use unic_langid::LanguageIdentifier;

/// One embedded message file: its locale (a BCP 47 tag such as `en` or `zh-CN`), its file name
/// (what an override under `locales/<locale>/` is called) and its Fluent source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageFile {
    /// The locale's BCP 47 tag.
    pub locale: &'static str,
    /// The file's name (`web.ftl`).
    pub file: &'static str,
    /// The Fluent source.
    pub source: &'static str,
}

/// A message file that cannot be used: which, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("messages {file}: {reason}")]
pub struct CatalogError {
    /// `en/web.ftl`, or the override file's path.
    pub file: String,
    /// What Fluent's parser (or the file system) said.
    pub reason: String,
}

/// An argument of a message: text or a whole number (numbers choose plural forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Inserted as it is.
    Text(String),
    /// Inserted as a number; selects plural forms (`[one]`, `[other]`).
    Number(i64),
}

struct Locale {
    tag: String,
    bundle: FluentBundle<FluentResource>,
    ids: BTreeSet<String>,
}

/// The messages of every locale; the first locale given is the default.
pub struct Catalog {
    locales: Vec<Locale>,
    index: HashMap<String, usize>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("locales", &self.locales().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn parse(file: &str, source: String) -> Result<FluentResource, CatalogError> {
    FluentResource::try_new(source).map_err(|(_, errors)| CatalogError {
        file: file.to_owned(),
        reason: errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    })
}

fn message_ids(resource: &FluentResource) -> impl Iterator<Item = String> + '_ {
    resource.entries().filter_map(|entry| match entry {
        Entry::Message(message) => Some(message.id.name.to_owned()),
        _ => None,
    })
}

impl Catalog {
    /// The catalog of `files` (grouped by locale, in the order the locales first appear; the
    /// first is the default), each file overridden by `<override_dir>/locales/<locale>/<file>`
    /// when that exists. A file that does not parse, or that defines a message twice, is an
    /// error.
    pub fn new(files: &[MessageFile], override_dir: Option<&Path>) -> Result<Self, CatalogError> {
        let mut locales: Vec<Locale> = Vec::new();
        let mut index = HashMap::new();
        for file in files {
            let name = format!("{}/{}", file.locale, file.file);
            let at = match index.get(file.locale) {
                Some(&at) => at,
                None => {
                    let id: LanguageIdentifier = file.locale.parse().map_err(|_| CatalogError {
                        file: name.clone(),
                        reason: format!("{:?} is not a language tag", file.locale),
                    })?;
                    let mut bundle = FluentBundle::new_concurrent(vec![id]);
                    // No Unicode isolation marks around arguments: they would end up in
                    // subjects, plain-text bodies and links.
                    bundle.set_use_isolating(false);
                    locales.push(Locale {
                        tag: file.locale.to_owned(),
                        bundle,
                        ids: BTreeSet::new(),
                    });
                    index.insert(file.locale.to_owned(), locales.len() - 1);
                    locales.len() - 1
                }
            };
            let locale = &mut locales[at];
            let resource = parse(&name, file.source.to_owned())?;
            locale.ids.extend(message_ids(&resource));
            locale
                .bundle
                .add_resource(resource)
                .map_err(|errors| CatalogError {
                    file: name.clone(),
                    reason: errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                })?;
            if let Some(dir) = override_dir {
                let path = dir.join("locales").join(file.locale).join(file.file);
                if path.is_file() {
                    let shown = path.display().to_string();
                    let text = std::fs::read_to_string(&path).map_err(|e| CatalogError {
                        file: shown.clone(),
                        reason: e.to_string(),
                    })?;
                    let resource = parse(&shown, text)?;
                    locale.ids.extend(message_ids(&resource));
                    locale.bundle.add_resource_overriding(resource);
                    tracing::info!(file = %shown, "messages overridden");
                }
            }
        }
        Ok(Self { locales, index })
    }

    /// The locales, the default first.
    pub fn locales(&self) -> impl Iterator<Item = &str> {
        self.locales.iter().map(|l| l.tag.as_str())
    }

    /// The ids of the messages `locale` defines (empty for a locale it does not have).
    pub fn message_ids(&self, locale: &str) -> BTreeSet<String> {
        self.index
            .get(locale)
            .map(|&at| self.locales[at].ids.clone())
            .unwrap_or_default()
    }

    /// Which of `ids` each locale lacks, and which ids a locale has that the default has not:
    /// `(locale, id)` pairs, empty when every locale is complete.
    pub fn missing<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
        let wanted: BTreeSet<String> = ids.into_iter().map(str::to_owned).collect();
        let default = self
            .locales
            .first()
            .map(|l| l.ids.clone())
            .unwrap_or_default();
        let mut missing = Vec::new();
        for locale in &self.locales {
            for id in wanted.union(&default) {
                if !locale.ids.contains(id) {
                    missing.push((locale.tag.clone(), id.clone()));
                }
            }
            for id in locale.ids.difference(&default) {
                missing.push((self.locales[0].tag.clone(), id.clone()));
            }
        }
        missing
    }

    /// The locale this catalog uses for `locale`: itself if it has it, else the default.
    fn bundle(&self, locale: &str) -> Option<&Locale> {
        self.index
            .get(locale)
            .map(|&at| &self.locales[at])
            .or_else(|| self.locales.first())
    }

    /// Message `id` in `locale` with `args`, or `None` when neither `locale` nor the default
    /// has it.
    pub fn try_format(&self, locale: &str, id: &str, args: &[(&str, Arg)]) -> Option<String> {
        let chosen = self.bundle(locale)?;
        let (locale, message) = match chosen.bundle.get_message(id) {
            Some(message) => (chosen, message),
            None => {
                let default = self.locales.first()?;
                tracing::warn!(
                    locale = %chosen.tag,
                    id,
                    "message missing in this locale; the default's is used"
                );
                (default, default.bundle.get_message(id)?)
            }
        };
        let pattern = message.value()?;
        let mut fluent_args = FluentArgs::with_capacity(args.len());
        for (name, value) in args {
            match value {
                Arg::Text(text) => fluent_args.set(*name, FluentValue::from(text.as_str())),
                Arg::Number(n) => fluent_args.set(*name, FluentValue::from(*n)),
            }
        }
        let mut errors = Vec::new();
        let text = locale
            .bundle
            .format_pattern(pattern, Some(&fluent_args), &mut errors);
        if !errors.is_empty() {
            tracing::warn!(locale = %locale.tag, id, errors = ?errors, "message formatted with errors");
        }
        Some(text.into_owned())
    }

    /// [`Self::try_format`], or the id itself (with a warning) when no locale has it.
    pub fn format(&self, locale: &str, id: &str, args: &[(&str, Arg)]) -> String {
        self.try_format(locale, id, args).unwrap_or_else(|| {
            tracing::warn!(id, "no such message in any locale");
            id.to_owned()
        })
    }
}

/// The message ids templates name with `t("…")` or `t('…')`.
pub fn ids_in_templates(templates: &[(&str, &str)]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (_, source) in templates {
        let mut rest = *source;
        while let Some(at) = rest.find("t(") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + 2..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            if let Some(end) = rest[1..].find(quote) {
                ids.insert(rest[1..=end].to_owned());
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &[MessageFile] = &[
        MessageFile {
            locale: "en",
            file: "t.ftl",
            source: "hello = Hello, { $name }!\nonly-en = Only English\nhours = { $n ->\n    [one] 1 hour\n   *[other] { $n } hours\n}\n",
        },
        MessageFile {
            locale: "zh-CN",
            file: "t.ftl",
            source: "hello = 你好，{ $name }！\nhours = { $n } 小时\n",
        },
    ];

    fn text(s: &str) -> Arg {
        Arg::Text(s.to_owned())
    }

    #[test]
    fn formats_per_locale_with_fallbacks_and_no_isolation_marks() {
        let c = Catalog::new(FILES, None).unwrap();
        assert_eq!(c.locales().collect::<Vec<_>>(), ["en", "zh-CN"]);
        assert_eq!(
            c.format("en", "hello", &[("name", text("Ann"))]),
            "Hello, Ann!"
        );
        assert_eq!(
            c.format("zh-CN", "hello", &[("name", text("安"))]),
            "你好，安！"
        );
        assert_eq!(c.format("en", "hours", &[("n", Arg::Number(1))]), "1 hour");
        assert_eq!(c.format("en", "hours", &[("n", Arg::Number(3))]), "3 hours");
        assert_eq!(
            c.format("zh-CN", "hours", &[("n", Arg::Number(3))]),
            "3 小时"
        );
        // Missing in zh-CN: the default's; an unknown locale: the default; unknown id: the id.
        assert_eq!(c.format("zh-CN", "only-en", &[]), "Only English");
        assert_eq!(c.format("fr", "hello", &[("name", text("A"))]), "Hello, A!");
        assert_eq!(c.format("en", "nope", &[]), "nope");
        assert_eq!(c.try_format("en", "nope", &[]), None);
        assert!(c.message_ids("zh-CN").contains("hello"));
        assert!(!c.message_ids("zh-CN").contains("only-en"));
    }

    #[test]
    fn missing_ids_are_found_in_each_locale() {
        let c = Catalog::new(FILES, None).unwrap();
        // `only-en` is missing in zh-CN; `nope` (used, defined nowhere) in both.
        assert_eq!(
            c.missing(["hello", "nope"]),
            [
                ("en".to_owned(), "nope".to_owned()),
                ("zh-CN".to_owned(), "nope".to_owned()),
                ("zh-CN".to_owned(), "only-en".to_owned()),
            ]
        );
        assert!(
            c.missing(["hello"])
                .contains(&("zh-CN".to_owned(), "only-en".to_owned()))
        );
        let ids = ids_in_templates(&[
            (
                "a",
                "{{ t(\"one\") }} {{ t('two', x=1) }} {{ not(\"x\") }} {{ t(name) }}",
            ),
            ("b", "{{ t(\"three\") }}"),
        ]);
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["one", "three", "two"]);
    }

    #[test]
    fn bad_files_are_errors_and_overrides_replace_messages() {
        let broken = [MessageFile {
            locale: "en",
            file: "t.ftl",
            source: "hello = {",
        }];
        let error = Catalog::new(&broken, None).unwrap_err();
        assert_eq!(error.file, "en/t.ftl");
        let twice = [MessageFile {
            locale: "en",
            file: "t.ftl",
            source: "a = 1\na = 2\n",
        }];
        assert!(Catalog::new(&twice, None).is_err());

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("locales/zh-CN")).unwrap();
        std::fs::write(
            dir.path().join("locales/zh-CN/t.ftl"),
            "hello = 您好，{ $name }。\nextra = 额外\n",
        )
        .unwrap();
        let c = Catalog::new(FILES, Some(dir.path())).unwrap();
        assert_eq!(
            c.format("zh-CN", "hello", &[("name", text("安"))]),
            "您好，安。"
        );
        assert_eq!(c.format("zh-CN", "extra", &[]), "额外");
        assert_eq!(c.format("en", "hello", &[("name", text("A"))]), "Hello, A!");
        std::fs::write(dir.path().join("locales/zh-CN/t.ftl"), "hello = {").unwrap();
        assert!(Catalog::new(FILES, Some(dir.path())).is_err());
    }
}
