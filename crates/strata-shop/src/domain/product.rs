//! The product: what the shop sells, under a sku, at a price. Pure: no I/O, no clock.

use serde::{Deserialize, Serialize};
use strata_domain::{Aggregate, DomainError, TaggedEvent};

use super::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, Money};

/// A product, stream `product-{sku}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The product's details, once created.
    pub details: Option<ProductDetails>,
}

/// What a created product is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetails {
    /// The stock-keeping unit: the product's id.
    pub sku: String,
    /// The display name.
    pub name: String,
    /// The description, searched by the catalog.
    pub description: String,
    /// The unit price.
    pub price: Money,
}

/// What can be asked of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    /// Puts a new product in the catalog.
    Create {
        /// The sku (also the aggregate id).
        sku: String,
        /// Display name: 1 to [`MAX_NAME_CHARS`] characters, not blank.
        name: String,
        /// Description: at most [`MAX_DESCRIPTION_CHARS`] characters.
        description: String,
        /// Unit price, above zero.
        price: Money,
    },
    /// Sets a new unit price (orders already holding the product keep theirs).
    ChangePrice {
        /// The new unit price, above zero.
        price: Money,
    },
}

/// What happened to a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ProductEvent {
    /// A product was put in the catalog.
    #[serde(rename = "ProductCreated")]
    Created {
        /// Its sku.
        sku: String,
        /// Its name.
        name: String,
        /// Its description.
        description: String,
        /// Its unit price.
        price: Money,
    },
    /// A product's price changed.
    #[serde(rename = "ProductPriceChanged")]
    PriceChanged {
        /// Its sku.
        sku: String,
        /// The price before.
        old_price: Money,
        /// The price now.
        price: Money,
    },
}

impl TaggedEvent for ProductEvent {}

/// Why a product command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProductError {
    /// The sku is already a product.
    #[error("product {0} already exists")]
    AlreadyExists(String),
    /// There is no product with this sku.
    #[error("no such product")]
    NotFound,
    /// The sku is empty.
    #[error("a sku must not be empty")]
    InvalidSku,
    /// The name is blank or too long.
    #[error("a product name must have 1 to {MAX_NAME_CHARS} characters and not be blank")]
    InvalidName,
    /// The description is too long.
    #[error("a product description must have at most {MAX_DESCRIPTION_CHARS} characters")]
    DescriptionTooLong,
    /// The price is zero or above the largest amount.
    #[error("a price must be above zero and at most {}", Money::MAX.0)]
    InvalidPrice,
}

impl DomainError for ProductError {
    fn code(&self) -> &'static str {
        match self {
            ProductError::AlreadyExists(_) => "product_exists",
            ProductError::NotFound => "product_not_found",
            ProductError::InvalidSku => "invalid_sku",
            ProductError::InvalidName => "invalid_name",
            ProductError::DescriptionTooLong => "description_too_long",
            ProductError::InvalidPrice => "invalid_price",
        }
    }
}

fn check_price(price: Money) -> Result<(), ProductError> {
    if price == Money::ZERO || !price.is_valid() {
        return Err(ProductError::InvalidPrice);
    }
    Ok(())
}

impl Aggregate for Product {
    const CATEGORY: &'static str = "product";

    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;

    fn decide(&self, command: &ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        match (command, &self.details) {
            (ProductCommand::Create { sku, .. }, Some(_)) => {
                Err(ProductError::AlreadyExists(sku.clone()))
            }
            (
                ProductCommand::Create {
                    sku,
                    name,
                    description,
                    price,
                },
                None,
            ) => {
                if sku.is_empty() {
                    return Err(ProductError::InvalidSku);
                }
                if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
                    return Err(ProductError::InvalidName);
                }
                if description.chars().count() > MAX_DESCRIPTION_CHARS {
                    return Err(ProductError::DescriptionTooLong);
                }
                check_price(*price)?;
                Ok(vec![ProductEvent::Created {
                    sku: sku.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    price: *price,
                }])
            }
            (ProductCommand::ChangePrice { .. }, None) => Err(ProductError::NotFound),
            (ProductCommand::ChangePrice { price }, Some(details)) => {
                check_price(*price)?;
                if *price == details.price {
                    return Ok(Vec::new());
                }
                Ok(vec![ProductEvent::PriceChanged {
                    sku: details.sku.clone(),
                    old_price: details.price,
                    price: *price,
                }])
            }
        }
    }

    fn evolve(mut self, event: &ProductEvent) -> Self {
        match event {
            ProductEvent::Created {
                sku,
                name,
                description,
                price,
            } => {
                self.details = Some(ProductDetails {
                    sku: sku.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    price: *price,
                });
            }
            ProductEvent::PriceChanged { price, .. } => {
                if let Some(details) = &mut self.details {
                    details.price = *price;
                }
            }
        }
        self
    }
}
