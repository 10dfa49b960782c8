//! The languages pages and emails are written in, and how one is chosen from a request.

use std::fmt;

/// A language the service speaks. Stored on each account (by its tag) when it registers, and
/// used for every email to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, strum::VariantArray)]
pub enum Locale {
    /// English, the default (and the tutorial's).
    #[default]
    En,
    /// Simplified Chinese.
    ZhCn,
}

/// A language this service does not offer (the API's `lang`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported language {0:?}: use one of en, zh-CN")]
pub struct UnsupportedLocale(pub String);

impl Locale {
    pub const ALL: &[Self] = <Self as strum::VariantArray>::VARIANTS;

    /// Its BCP 47 tag: `en`, `zh-CN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::ZhCn => "zh-CN",
        }
    }

    /// The locale a BCP 47 language tag asks for, if this service speaks it: `en` and any
    /// `en-*`; `zh`, `zh-CN`, `zh-SG`, `zh-Hans` and `zh-Hans-*` (Simplified Chinese). Case is
    /// ignored. Traditional Chinese (`zh-TW`, `zh-HK`, `zh-Hant`) is not Simplified: `None`.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        let mut parts = tag.split('-');
        match parts.next()? {
            "en" => Some(Self::En),
            "zh" => match parts.next() {
                None | Some("cn" | "sg" | "hans" | "my") => Some(Self::ZhCn),
                Some(_) => None,
            },
            _ => None,
        }
    }

    /// [`Self::from_tag`], or an error naming the languages on offer.
    pub fn parse(tag: &str) -> Result<Self, UnsupportedLocale> {
        Self::from_tag(tag).ok_or_else(|| UnsupportedLocale(tag.chars().take(35).collect()))
    }

    /// The locale an `Accept-Language` header prefers: the spoken language with the highest
    /// quality (the earliest among equals); `None` when it names none (or is malformed).
    /// `*` is ignored.
    pub fn negotiate(accept_language: &str) -> Option<Self> {
        let mut best: Option<(u16, Self)> = None;
        for item in accept_language.split(',').take(32) {
            let mut fields = item.split(';');
            let tag = fields.next().unwrap_or("").trim();
            let mut quality = 1000u16;
            for field in fields {
                if let Some(q) = field.trim().strip_prefix("q=") {
                    quality = parse_quality(q).unwrap_or(0);
                }
            }
            if quality == 0 {
                continue;
            }
            if let Some(locale) = Self::from_tag(tag)
                && best.is_none_or(|(q, _)| quality > q)
            {
                best = Some((quality, locale));
            }
        }
        best.map(|(_, locale)| locale)
    }
}

/// An HTTP quality value (`0`, `0.5`, `1.000`) in thousandths.
fn parse_quality(text: &str) -> Option<u16> {
    let value: f32 = text.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        for &locale in Locale::ALL {
            assert_eq!(Locale::from_tag(locale.as_str()), Some(locale));
        }
        for tag in ["zh", "ZH-cn", "zh_CN", "zh-Hans", "zh-Hans-CN", "zh-SG"] {
            assert_eq!(Locale::from_tag(tag), Some(Locale::ZhCn), "{tag}");
        }
        for tag in ["en", "en-US", "EN-gb"] {
            assert_eq!(Locale::from_tag(tag), Some(Locale::En), "{tag}");
        }
        for tag in ["zh-TW", "zh-Hant", "zh-HK", "fr", "", "*"] {
            assert_eq!(Locale::from_tag(tag), None, "{tag}");
        }
        assert_eq!(Locale::default(), Locale::En);
        let error = Locale::parse("fr-FR").unwrap_err().to_string();
        assert!(error.contains("en, zh-CN"), "{error}");
    }

    #[test]
    fn accept_language() {
        let n = Locale::negotiate;
        assert_eq!(n("zh-CN,zh;q=0.9,en;q=0.8"), Some(Locale::ZhCn));
        assert_eq!(n("en-US,en;q=0.9,zh-CN;q=0.8"), Some(Locale::En));
        assert_eq!(n("fr-FR, zh;q=0.5, en;q=0.4"), Some(Locale::ZhCn));
        assert_eq!(n("en;q=0.2, zh-Hans;q=0.7"), Some(Locale::ZhCn));
        assert_eq!(n("zh-TW, en;q=0.5"), Some(Locale::En));
        assert_eq!(n("zh-CN;q=0, en;q=0.1"), Some(Locale::En));
        assert_eq!(n("fr, de"), None);
        assert_eq!(n("*"), None);
        assert_eq!(n(""), None);
        assert_eq!(n("zh;q=abc"), None);
        assert_eq!(n("zh-CN;q=2"), None);
    }
}
