//! Docker-style user strings resolved against the container's `/etc/passwd` and `/etc/group`.

use crate::Error;

/// A resolved user: ids, supplementary groups and home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the primary gid first (as current BuildKit and containerd do,
    /// `ensureAdditionalGids`; BuildKit's testUserAdditionalGids expects `groups=0(root),10(wheel)`),
    /// then the `/etc/group` memberships of the user (none when the user string names a group,
    /// as runc), then the additional groups.
    pub groups: Vec<u32>,
    pub home: String,
}

#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: fields[0].to_owned(),
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
                home: fields.get(5).map(|home| (*home).to_owned()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: fields[0].to_owned(),
                gid: fields[2].parse().ok()?,
                members: fields
                    .get(3)
                    .map(|list| list.split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn find_group(groups: &[GroupEntry], spec: &str) -> Result<u32, Error> {
    if let Some(entry) = groups.iter().find(|g| g.name == spec) {
        return Ok(entry.gid);
    }
    spec.parse::<u32>().map_err(|_| Error::UnknownGroup(spec.to_owned()))
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, …) with the contents of the
/// container's passwd and group files (either may be missing: pass `None`).
pub fn resolve(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
    additional_groups: &[String],
) -> Result<ExecUser, Error> {
    let passwd = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = passwd.iter().find(|p| p.name == user_part).cloned().or_else(|| {
        user_part.parse::<u32>().ok().map(|uid| {
            passwd.iter().find(|p| p.uid == uid).cloned().unwrap_or(PasswdEntry {
                name: String::new(),
                uid,
                gid: 0,
                home: "/".to_owned(),
            })
        })
    });
    let Some(entry) = entry else {
        return Err(Error::UnknownUser(user_part.to_owned()));
    };
    let explicit_group = group_part.filter(|spec| !spec.is_empty());
    let gid = match explicit_group {
        Some(spec) => find_group(&groups, spec)?,
        None => entry.gid,
    };
    let mut ids = vec![gid];
    if explicit_group.is_none() && !entry.name.is_empty() {
        for g in &groups {
            if g.members.contains(&entry.name) && !ids.contains(&g.gid) {
                ids.push(g.gid);
            }
        }
    }
    for extra in additional_groups {
        let extra_gid = find_group(&groups, extra)?;
        if !ids.contains(&extra_gid) {
            ids.push(extra_gid);
        }
    }
    let home = if entry.home.is_empty() { "/".to_owned() } else { entry.home };
    Ok(ExecUser { uid: entry.uid, gid, groups: ids, home })
}

/// The uid and primary gid of the user `name` in the contents of a passwd file (`None` when it
/// is not listed): a lookup by name only, for callers with their own rules for numeric ids
/// (`COPY --chown`).
pub fn user_ids(passwd: &str, name: &str) -> Option<(u32, u32)> {
    parse_passwd(passwd).into_iter().find(|entry| entry.name == name).map(|entry| (entry.uid, entry.gid))
}

/// The gid of the group `name` in the contents of a group file (`None` when it is not listed).
pub fn group_id(group: &str, name: &str) -> Option<u32> {
    parse_group(group).into_iter().find(|entry| entry.name == name).map(|entry| entry.gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
        www-data:x:33:33:www-data:/var/www:/bin/false\n\
        nobody:x:65534:65534:nobody:/home:/bin/false\n";
    const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwheel:x:10:root\nwww-data:x:33:\n\
        users:x:100:www-data,nobody\nnogroup:x:65534:\n";

    fn res(user: &str) -> Result<ExecUser, Error> {
        resolve(user, Some(PASSWD), Some(GROUP), &[])
    }

    #[test]
    fn table() {
        let cases: &[(&str, u32, u32, &[u32], &str)] = &[
            // the primary gid, then the memberships
            ("", 0, 0, &[0, 10], "/root"),
            ("root", 0, 0, &[0, 10], "/root"),
            ("0", 0, 0, &[0, 10], "/root"),
            ("www-data", 33, 33, &[33, 100], "/var/www"),
            ("33", 33, 33, &[33, 100], "/var/www"),
            ("nobody", 65534, 65534, &[65534, 100], "/home"),
            ("daemon", 1, 1, &[1], "/usr/sbin"),
            // an explicit group: only that group, no memberships (runc)
            ("nobody:daemon", 65534, 1, &[1], "/home"),
            ("www-data:www-data", 33, 33, &[33], "/var/www"),
            ("1234", 1234, 0, &[0], "/"),
            ("1234:5678", 1234, 5678, &[5678], "/"),
            ("daemon:www-data", 1, 33, &[33], "/usr/sbin"),
            ("root:", 0, 0, &[0, 10], "/root"),
        ];
        for (spec, uid, gid, groups, home) in cases {
            let user = res(spec).unwrap_or_else(|err| panic!("{spec}: {err}"));
            assert_eq!(
                (user.uid, user.gid, user.groups.as_slice(), user.home.as_str()),
                (*uid, *gid, *groups, *home),
                "{spec}"
            );
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(res("alice"), Err(Error::UnknownUser(name)) if name == "alice"));
        assert!(matches!(res("root:nogroupx"), Err(Error::UnknownGroup(name)) if name == "nogroupx"));
    }

    #[test]
    fn missing_files_allow_numeric_ids() {
        let user = resolve("5:6", None, None, &[]).expect("numeric");
        assert_eq!((user.uid, user.gid, user.home.as_str()), (5, 6, "/"));
        assert!(resolve("root", None, None, &[]).is_err());
        let root = resolve("", None, None, &[]).expect("root");
        assert_eq!((root.uid, root.gid), (0, 0));
    }

    #[test]
    fn lookups_by_name() {
        assert_eq!(user_ids(PASSWD, "www-data"), Some((33, 33)));
        assert_eq!(user_ids(PASSWD, "nobody"), Some((65534, 65534)));
        assert_eq!(user_ids(PASSWD, "33"), None, "a lookup by name only");
        assert_eq!(user_ids("# comment\nbroken:x:notanumber:1::/:/bin/sh\n", "broken"), None);
        assert_eq!(group_id(GROUP, "wheel"), Some(10));
        assert_eq!(group_id(GROUP, "staff"), None);
    }

    #[test]
    fn additional_groups() {
        let user = resolve("www-data", Some(PASSWD), Some(GROUP), &["wheel".into(), "4242".into()])
            .expect("resolve");
        assert_eq!(user.groups, vec![33, 100, 10, 4242]);
        let user =
            resolve("www-data:www-data", Some(PASSWD), Some(GROUP), &["wheel".into()]).expect("resolve");
        assert_eq!(user.groups, vec![33, 10]);
    }
}
