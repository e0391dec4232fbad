//! Rebuilds when a migration changes: `sqlx::migrate!` embeds the migrations at compile
//! time, and cargo does not otherwise notice a new or edited `.sql` file.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
