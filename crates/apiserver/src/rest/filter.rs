//! The label and field selectors of a list, watch or deletecollection.
//!
//! Unsupported field labels are refused up front with upstream's 400, so a
//! typo never silently matches nothing.

use capstan_apimachinery::meta::Object;
use capstan_apimachinery::selector::{self, FieldSelector, LabelSelector};
use capstan_apimachinery::{ApiError, ResourceType};

use crate::request::Query;

pub struct Filter {
    resource: &'static ResourceType,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_query(resource: &'static ResourceType, query: &Query) -> Result<Filter, ApiError> {
        let bad = |e: selector::SelectorError| ApiError::bad_request(e.to_string());
        let labels = query
            .get("labelSelector")
            .map(LabelSelector::parse)
            .transpose()
            .map_err(bad)?;
        let fields = query
            .get("fieldSelector")
            .map(FieldSelector::parse)
            .transpose()
            .map_err(bad)?;
        let fields = fields.unwrap_or_else(FieldSelector::everything);
        selector::validate_fields(resource.group, resource.kind, &fields).map_err(bad)?;
        Ok(Filter {
            resource,
            labels: labels.unwrap_or_else(LabelSelector::everything),
            fields,
        })
    }

    pub fn matches(&self, object: &Object) -> bool {
        self.labels.matches_object(object)
            && (self.fields.is_empty()
                || self
                    .fields
                    .matches_object(self.resource.group, self.resource.kind, object)
                    .unwrap_or(false))
    }
}
