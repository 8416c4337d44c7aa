//! Region names: their form, the list, and known regions.

use super::{Diagnostic, Pos, Region, RegionList, Scope, Validator};

impl Validator<'_> {
    /// Expand and check a region list; duplicates are reported with both places.
    pub(super) fn region_list(&mut self, list: &RegionList) -> Vec<(Region, Pos)> {
        let mut out: Vec<(Region, Pos)> = Vec::with_capacity(list.items.len());
        if list.invalid {
            return out;
        }
        if list.items.is_empty() {
            self.push(
                Diagnostic::error(&list.field, list.pos, "the region list is empty")
                    .with_help("list at least one region, e.g. `regions: [us-east-1]`"),
            );
        }
        for (i, item) in list.items.iter().enumerate() {
            let field = if list.items.len() > 1 || list.field.ends_with('s') {
                format!("{}[{i}]", list.field)
            } else {
                list.field.clone()
            };
            let Some(text) = self.expand(&field, item, Scope::default()) else {
                continue;
            };
            match Region::parse(&text) {
                Ok(region) => {
                    if let Some((_, first)) = out.iter().find(|(r, _)| *r == region) {
                        self.push(
                            Diagnostic::error(
                                &field,
                                item.pos,
                                format!("region {region} is listed twice"),
                            )
                            .with_label("listed again here")
                            .with_related(*first, "first listed here")
                            .with_help("remove one of them"),
                        );
                        continue;
                    }
                    if !region.is_known() {
                        let help = match did_you_mean(&text) {
                            Some(known) => format!(
                                "did you mean `{known}`? (a region AWS opened recently is fine)"
                            ),
                            None => "check the spelling; a region AWS opened recently is fine"
                                .to_owned(),
                        };
                        self.push(
                            Diagnostic::warning(
                                &field,
                                item.pos,
                                format!("region {region} is not one labctl knows"),
                            )
                            .with_label("unknown region")
                            .with_help(help),
                        );
                    }
                    out.push((region, item.pos));
                }
                Err(message) => {
                    let help = match did_you_mean(&text) {
                        Some(known) => format!("did you mean `{known}`?"),
                        None => "regions look like `us-east-1`, `ap-southeast-1`, `us-gov-west-1`"
                            .to_owned(),
                    };
                    self.push(
                        Diagnostic::error(&field, item.pos, message)
                            .with_label("not a region")
                            .with_help(help),
                    );
                }
            }
        }
        out
    }
}

/// The known region a mistyped one most likely meant (`us-east1`, `us-est-1` → `us-east-1`).
fn did_you_mean(text: &str) -> Option<&'static str> {
    crate::diagnostic::suggest(&text.to_ascii_lowercase(), crate::desired::KNOWN_REGIONS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mistyped_regions_get_the_known_one() {
        for typo in ["us-east1", "us-est-1", "US-EAST-1", "useast-1", "eu-west1"] {
            let want = if typo.starts_with("eu") {
                "eu-west-1"
            } else {
                "us-east-1"
            };
            assert_eq!(super::did_you_mean(typo), Some(want), "{typo}");
        }
        assert_eq!(super::did_you_mean("mars-north-9"), None);
    }

    use super::super::table;

    #[test]
    fn region_names_and_lists() {
        table(&[
            (
                "keypairs:\n  - name: a\n    region: nowhere\n",
                "keypairs[0].region",
                "not an AWS region name",
            ),
            (
                "keypairs:\n  - name: a\n    regions: []\n",
                "keypairs[0].regions",
                "empty",
            ),
        ]);
    }
}
