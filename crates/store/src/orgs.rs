//! The organisation tree: départements and their schools.

use crate::{Result, Store, StoreError, unique};
use serde::Serialize;

/// A département (e.g. "02", Aisne).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Departement {
    /// Row id.
    pub id: i64,
    /// Its code ("02", "2A").
    pub code: String,
    /// Its name.
    pub name: String,
}

/// A school of a département.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct School {
    /// Row id.
    pub id: i64,
    /// Its département.
    pub departement: i64,
    /// Its name.
    pub name: String,
}

impl Store {
    /// Add a département; its code is unique.
    pub async fn create_departement(&self, code: &str, name: &str) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as("INSERT INTO departements (code, name) VALUES ($1, $2) RETURNING id")
            .bind(code)
            .bind(name)
            .fetch_one(self.pool())
            .await
            .map_err(|e| unique(e, "département"))?;
        Ok(id)
    }

    /// Every département, by code.
    pub async fn departements(&self) -> Result<Vec<Departement>> {
        Ok(sqlx::query_as("SELECT id, code, name FROM departements ORDER BY code").fetch_all(self.pool()).await?)
    }

    /// Add a school to département `departement`.
    pub async fn create_school(&self, departement: i64, name: &str) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as("INSERT INTO schools (departement, name) VALUES ($1, $2) RETURNING id")
            .bind(departement)
            .bind(name)
            .fetch_one(self.pool())
            .await
            .map_err(|e| unique(e, "school"))?;
        Ok(id)
    }

    /// A school by id.
    pub async fn school(&self, id: i64) -> Result<School> {
        sqlx::query_as("SELECT id, departement, name FROM schools WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("school"))
    }

    /// The schools of département `departement` (every school when `None`), by name.
    pub async fn schools(&self, departement: Option<i64>) -> Result<Vec<School>> {
        Ok(match departement {
            Some(d) => {
                sqlx::query_as("SELECT id, departement, name FROM schools WHERE departement = $1 ORDER BY name")
                    .bind(d)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as("SELECT id, departement, name FROM schools ORDER BY name").fetch_all(self.pool()).await?
            }
        })
    }
}
