//! `rename`: a container's new name is reserved like a created container's, written into its
//! config under its lock, and the old name released.

use super::record::{CONFIG, Container, ContainerConfig, RuntimeError, Store, io, read_json, write_json};

impl Store {
    /// docker's `rename`: reserves `new_name` (failing as `create` does when it is taken),
    /// rewrites the config under the container's lock and releases the old name.
    pub fn rename(&self, container: &mut Container, new_name: &str) -> Result<(), RuntimeError> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if new_name == container.config.name {
            return Err(RuntimeError::SameName(container.config.name.clone()));
        }
        self.reserve_name(new_name, &container.config.id)?;
        let old_name = {
            let _lock = container.lock()?;
            let path = container.dir.join(CONFIG);
            let mut config: ContainerConfig = match read_json(&path) {
                Ok(config) => config,
                Err(err) => {
                    let _ = std::fs::remove_file(self.name_path(new_name));
                    return Err(err);
                }
            };
            let old_name = std::mem::replace(&mut config.name, new_name.to_owned());
            if let Err(err) = write_json(&path, &config) {
                let _ = std::fs::remove_file(self.name_path(new_name));
                return Err(err);
            }
            container.config = config;
            old_name
        };
        let old_path = self.name_path(&old_name);
        if std::fs::read_to_string(&old_path).is_ok_and(|id| id.trim() == container.config.id) {
            std::fs::remove_file(&old_path).map_err(io("remove", &old_path))?;
        }
        Ok(())
    }
}
