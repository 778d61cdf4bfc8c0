//! The shape of a Compose file: which keys each mapping takes, which YAML types each
//! value may have, which words an enumeration allows.
//!
//! This is the Compose Specification's JSON schema (compose-spec.json, draft 2020-12)
//! written as Rust tables, checked on each file after interpolation and before
//! merging, as docker compose checks it. Plain scalars are typed by YAML 1.2's core
//! schema (`123` is an integer, `true` a boolean, `"123"` a string), mapping keys must
//! be strings, and an interpolated value is always a string. What the schema leaves to
//! the loader (a port's syntax, a duration, references between objects) is checked
//! later, while typing. `crates/spec/tests/conformance.rs` holds this table against the
//! schema itself.

use crate::convert::{closest, join};
use crate::error::SpecError;
use crate::yaml::{Key, Node, Scalar, Value};

/// A set of scalar types.
type Types = u8;
const STR: Types = 1;
const INT: Types = 2;
/// Any number, integers included.
const NUM: Types = 4 | INT;
const BOOL: Types = 8;
const NULL: Types = 16;

/// What a node may be.
pub(crate) enum Shape {
    /// Anything at all.
    Any,
    /// A scalar of one of these types.
    Scalar(Types),
    /// A string, one of these words.
    Enum(&'static [&'static str]),
    /// A string that passes a check the schema writes as a pattern.
    Pattern(fn(&str) -> bool, &'static str),
    /// An integer in `min..=max`.
    Range(i64, i64),
    /// A sequence; `true` when its items must differ.
    List(&'static Shape, bool),
    /// A mapping with named fields.
    Map(&'static Fields),
    /// A mapping of free names: keys that pass `names` take `value`; any other key is
    /// refused, or given `others` when that is set.
    Dict {
        names: fn(&str) -> bool,
        value: &'static Shape,
        others: Option<&'static Shape>,
    },
    /// The first of these whose kind (scalar type, sequence, mapping) fits the node.
    OneOf(&'static [Shape]),
    /// A mapping with named fields, or null.
    MapOrNull(&'static Fields),
}

/// The fields of a mapping.
pub(crate) struct Fields {
    pub keys: &'static [(&'static str, Shape)],
    pub required: &'static [&'static str],
    /// Keys starting with `x-` are allowed (and not checked).
    pub x: bool,
}

const fn fields(keys: &'static [(&'static str, Shape)]) -> Fields {
    Fields {
        keys,
        required: &[],
        x: true,
    }
}

// === the Compose Specification ===

const S: Shape = Shape::Scalar(STR);
const S_B: Shape = Shape::Scalar(STR | BOOL);
const S_I: Shape = Shape::Scalar(STR | INT);
const S_N: Shape = Shape::Scalar(STR | NUM);
const B: Shape = Shape::Scalar(BOOL);
const STRINGS: Shape = Shape::List(&S, false);
const STRING_SET: Shape = Shape::List(&S, true);
const STRING_OR_LIST: Shape = Shape::OneOf(&[S, STRING_SET]);
const COMMAND: Shape = Shape::OneOf(&[Shape::Scalar(NULL | STR), STRINGS]);
const LIST_OR_DICT: Shape = Shape::OneOf(&[
    Shape::Dict {
        names: non_empty,
        value: &Shape::Scalar(STR | NUM | BOOL | NULL),
        others: None,
    },
    STRING_SET,
]);
const OPTIONS: Shape = Shape::Dict {
    names: non_empty,
    value: &S_N,
    others: None,
};
const EXTERNAL: Shape = Shape::OneOf(&[S_B, Shape::Map(&fields(&[("name", S)]))]);
/// An external object in `secrets` and `configs`, where the schema does not close it.
const EXTERNAL_OPEN: Shape = Shape::OneOf(&[
    S_B,
    Shape::Map(&Fields {
        keys: &[("name", S)],
        required: &[],
        x: true,
    }),
]);

static TOP: Fields = Fields {
    keys: &[
        ("version", S),
        ("name", S),
        ("include", Shape::List(&INCLUDE, false)),
        (
            "services",
            Shape::Dict {
                names: object_name,
                value: &Shape::Map(&SERVICE),
                others: None,
            },
        ),
        (
            "models",
            Shape::Dict {
                names: object_name,
                value: &Shape::Map(&MODEL),
                others: Some(&Shape::Any),
            },
        ),
        (
            "networks",
            Shape::Dict {
                names: object_name,
                value: &Shape::MapOrNull(&NETWORK),
                others: Some(&Shape::Any),
            },
        ),
        (
            "volumes",
            Shape::Dict {
                names: object_name,
                value: &Shape::MapOrNull(&VOLUME),
                others: None,
            },
        ),
        (
            "secrets",
            Shape::Dict {
                names: object_name,
                value: &Shape::Map(&SECRET),
                others: None,
            },
        ),
        (
            "configs",
            Shape::Dict {
                names: object_name,
                value: &Shape::Map(&CONFIG),
                others: None,
            },
        ),
    ],
    required: &[],
    x: true,
};

const INCLUDE: Shape = Shape::OneOf(&[
    S,
    Shape::Map(&Fields {
        keys: &[
            ("path", STRING_OR_LIST),
            ("env_file", STRING_OR_LIST),
            ("project_directory", S),
        ],
        required: &[],
        x: false,
    }),
]);

static MODEL: Fields = Fields {
    keys: &[
        ("name", S),
        ("model", S),
        ("context_size", Shape::Scalar(INT)),
        ("runtime_flags", STRINGS),
    ],
    required: &["model"],
    x: true,
};

static NETWORK: Fields = fields(&[
    ("name", S),
    ("driver", S),
    ("driver_opts", OPTIONS),
    (
        "ipam",
        Shape::Map(&fields(&[
            ("driver", S),
            (
                "config",
                Shape::List(
                    &Shape::Map(&fields(&[
                        ("subnet", S),
                        ("ip_range", S),
                        ("gateway", S),
                        (
                            "aux_addresses",
                            Shape::Dict {
                                names: non_empty,
                                value: &S,
                                others: None,
                            },
                        ),
                    ])),
                    false,
                ),
            ),
            (
                "options",
                Shape::Dict {
                    names: non_empty,
                    value: &S,
                    others: None,
                },
            ),
        ])),
    ),
    ("external", EXTERNAL),
    ("internal", S_B),
    ("enable_ipv4", S_B),
    ("enable_ipv6", S_B),
    ("attachable", S_B),
    ("labels", LIST_OR_DICT),
]);

static VOLUME: Fields = fields(&[
    ("name", S),
    ("driver", S),
    ("driver_opts", OPTIONS),
    ("external", EXTERNAL),
    ("labels", LIST_OR_DICT),
]);

static SECRET: Fields = fields(&[
    ("name", S),
    ("environment", S),
    ("file", S),
    ("external", EXTERNAL_OPEN),
    ("labels", LIST_OR_DICT),
    ("driver", S),
    ("driver_opts", OPTIONS),
    ("template_driver", S),
]);

static CONFIG: Fields = fields(&[
    ("name", S),
    ("content", S),
    ("environment", S),
    ("file", S),
    ("external", EXTERNAL_OPEN),
    ("labels", LIST_OR_DICT),
    ("template_driver", S),
]);

const HEALTHCHECK: Shape = Shape::Map(&fields(&[
    ("disable", S_B),
    ("interval", S),
    ("retries", S_N),
    ("test", Shape::OneOf(&[S, STRINGS])),
    ("timeout", S),
    ("start_period", S),
    ("start_interval", S),
]));

const HOOK: Shape = Shape::Map(&Fields {
    keys: &[
        ("command", COMMAND),
        ("user", S),
        ("privileged", S_B),
        ("working_dir", S),
        ("environment", LIST_OR_DICT),
    ],
    required: &["command"],
    x: true,
});

const PRE_START_HOOK: Shape = Shape::Map(&fields(&[
    ("command", COMMAND),
    ("image", S),
    ("user", S),
    ("privileged", S_B),
    ("working_dir", S),
    ("environment", LIST_OR_DICT),
    ("per_replica", S_B),
]));

const UPDATE: Shape = Shape::Map(&fields(&[
    ("parallelism", S_I),
    ("delay", S),
    ("failure_action", S),
    ("monitor", S),
    ("max_failure_ratio", S_N),
    ("order", Shape::Enum(&["start-first", "stop-first"])),
]));

const DEVICE_REQUEST: &[(&str, Shape)] = &[
    ("capabilities", STRING_SET),
    ("count", S_I),
    ("device_ids", STRING_SET),
    ("driver", S),
    ("options", LIST_OR_DICT),
];

const DEPLOY: Shape = Shape::MapOrNull(&fields(&[
    ("mode", S),
    ("endpoint_mode", S),
    ("replicas", S_I),
    ("labels", LIST_OR_DICT),
    ("rollback_config", UPDATE),
    ("update_config", UPDATE),
    (
        "resources",
        Shape::Map(&fields(&[
            (
                "limits",
                Shape::Map(&fields(&[("cpus", S_N), ("memory", S), ("pids", S_I)])),
            ),
            (
                "reservations",
                Shape::Map(&fields(&[
                    ("cpus", S_N),
                    ("memory", S),
                    (
                        "generic_resources",
                        Shape::List(
                            &Shape::Map(&fields(&[(
                                "discrete_resource_spec",
                                Shape::Map(&fields(&[("kind", S), ("value", S_N)])),
                            )])),
                            false,
                        ),
                    ),
                    (
                        "devices",
                        Shape::List(
                            &Shape::Map(&Fields {
                                keys: DEVICE_REQUEST,
                                required: &["capabilities"],
                                x: true,
                            }),
                            false,
                        ),
                    ),
                ])),
            ),
        ])),
    ),
    (
        "restart_policy",
        Shape::Map(&fields(&[
            ("condition", S),
            ("delay", S),
            ("max_attempts", S_I),
            ("window", S),
        ])),
    ),
    (
        "placement",
        Shape::Map(&fields(&[
            ("constraints", STRINGS),
            (
                "preferences",
                Shape::List(&Shape::Map(&fields(&[("spread", S)])), false),
            ),
            ("max_replicas_per_node", S_I),
        ])),
    ),
]));

const DEVELOP: Shape = Shape::MapOrNull(&fields(&[(
    "watch",
    Shape::List(
        &Shape::Map(&Fields {
            keys: &[
                ("ignore", STRING_OR_LIST),
                ("include", STRING_OR_LIST),
                ("path", S),
                (
                    "action",
                    Shape::Enum(&["rebuild", "sync", "restart", "sync+restart", "sync+exec"]),
                ),
                ("target", S),
                ("exec", HOOK),
                ("initial_sync", B),
            ],
            required: &["path", "action"],
            x: true,
        }),
        false,
    ),
)]));

const EXTRA_HOSTS: Shape = Shape::OneOf(&[
    Shape::Dict {
        names: non_empty,
        value: &Shape::OneOf(&[S, STRINGS]),
        others: None,
    },
    STRING_SET,
]);

const CONFIG_OR_SECRET: Shape = Shape::List(
    &Shape::OneOf(&[
        S,
        Shape::Map(&fields(&[
            ("source", S),
            ("target", S),
            ("uid", S),
            ("gid", S),
            ("mode", S_N),
        ])),
    ]),
    false,
);

const ULIMITS: Shape = Shape::Dict {
    names: lower,
    value: &Shape::OneOf(&[
        S_I,
        Shape::Map(&Fields {
            keys: &[("hard", S_I), ("soft", S_I)],
            required: &["soft", "hard"],
            x: true,
        }),
    ]),
    others: Some(&Shape::Any),
};

const BLKIO_LIMIT: Shape = Shape::List(
    &Shape::Map(&Fields {
        keys: &[("path", S), ("rate", S_I)],
        required: &[],
        x: false,
    }),
    false,
);

const SERVICE_NETWORK: Shape = Shape::MapOrNull(&fields(&[
    ("aliases", STRING_SET),
    ("interface_name", S),
    ("ipv4_address", S),
    ("ipv6_address", S),
    ("link_local_ips", STRING_SET),
    ("mac_address", S),
    ("driver_opts", OPTIONS),
    ("priority", Shape::Scalar(NUM)),
    ("gw_priority", Shape::Scalar(NUM)),
]));

static SERVICE: Fields = fields(&[
    ("develop", DEVELOP),
    ("deploy", DEPLOY),
    ("annotations", LIST_OR_DICT),
    ("attach", S_B),
    (
        "build",
        Shape::OneOf(&[
            S,
            Shape::Map(&fields(&[
                ("context", S),
                ("dockerfile", S),
                ("dockerfile_inline", S),
                ("entitlements", STRINGS),
                ("args", LIST_OR_DICT),
                ("ssh", LIST_OR_DICT),
                ("labels", LIST_OR_DICT),
                ("cache_from", STRINGS),
                ("cache_to", STRINGS),
                ("no_cache", S_B),
                ("no_cache_filter", STRING_OR_LIST),
                ("additional_contexts", LIST_OR_DICT),
                ("network", S),
                ("provenance", S_B),
                ("sbom", S_B),
                ("pull", S_B),
                ("target", S),
                ("shm_size", S_I),
                ("extra_hosts", EXTRA_HOSTS),
                ("isolation", S),
                ("privileged", S_B),
                ("secrets", CONFIG_OR_SECRET),
                ("tags", STRINGS),
                ("ulimits", ULIMITS),
                ("platforms", STRINGS),
            ])),
        ]),
    ),
    (
        "blkio_config",
        Shape::Map(&Fields {
            keys: &[
                ("device_read_bps", BLKIO_LIMIT),
                ("device_read_iops", BLKIO_LIMIT),
                ("device_write_bps", BLKIO_LIMIT),
                ("device_write_iops", BLKIO_LIMIT),
                ("weight", S_I),
                (
                    "weight_device",
                    Shape::List(
                        &Shape::Map(&Fields {
                            keys: &[("path", S), ("weight", S_I)],
                            required: &[],
                            x: false,
                        }),
                        false,
                    ),
                ),
            ],
            required: &[],
            x: false,
        }),
    ),
    ("cap_add", STRING_SET),
    ("cap_drop", STRING_SET),
    ("cgroup", Shape::Enum(&["host", "private"])),
    ("cgroup_parent", S),
    ("command", COMMAND),
    ("configs", CONFIG_OR_SECRET),
    (
        "container_name",
        Shape::Pattern(
            container_name,
            "a name of letters, digits, `_`, `.` and `-`",
        ),
    ),
    ("cpu_count", Shape::OneOf(&[S, Shape::Range(0, i64::MAX)])),
    ("cpu_percent", Shape::OneOf(&[S, Shape::Range(0, 100)])),
    ("cpu_shares", S_N),
    ("cpu_quota", S_N),
    ("cpu_period", S_N),
    ("cpu_rt_period", S_N),
    ("cpu_rt_runtime", S_N),
    ("cpus", S_N),
    ("cpuset", S),
    (
        "credential_spec",
        Shape::Map(&fields(&[("config", S), ("file", S), ("registry", S)])),
    ),
    (
        "depends_on",
        Shape::OneOf(&[
            STRING_SET,
            Shape::Dict {
                names: object_name,
                value: &Shape::Map(&Fields {
                    keys: &[
                        ("restart", S_B),
                        ("required", B),
                        (
                            "condition",
                            Shape::Enum(&[
                                "service_started",
                                "service_healthy",
                                "service_completed_successfully",
                            ]),
                        ),
                    ],
                    required: &["condition"],
                    x: true,
                }),
                others: None,
            },
        ]),
    ),
    ("device_cgroup_rules", STRING_SET),
    (
        "devices",
        Shape::List(
            &Shape::OneOf(&[
                S,
                Shape::Map(&Fields {
                    keys: &[("source", S), ("target", S), ("permissions", S)],
                    required: &["source"],
                    x: true,
                }),
            ]),
            false,
        ),
    ),
    ("dns", STRING_OR_LIST),
    ("dns_opt", STRING_SET),
    ("dns_search", STRING_OR_LIST),
    ("domainname", S),
    ("entrypoint", COMMAND),
    (
        "env_file",
        Shape::OneOf(&[
            S,
            Shape::List(
                &Shape::OneOf(&[
                    S,
                    Shape::Map(&Fields {
                        keys: &[("path", S), ("format", S), ("required", S_B)],
                        required: &["path"],
                        x: false,
                    }),
                ]),
                false,
            ),
        ]),
    ),
    ("label_file", Shape::OneOf(&[S, STRINGS])),
    ("environment", LIST_OR_DICT),
    ("expose", Shape::List(&S_N, true)),
    (
        "extends",
        Shape::OneOf(&[
            S,
            Shape::Map(&Fields {
                keys: &[("service", S), ("file", S)],
                required: &["service"],
                x: false,
            }),
        ]),
    ),
    (
        "provider",
        Shape::Map(&Fields {
            keys: &[
                ("type", S),
                (
                    "options",
                    Shape::Dict {
                        names: non_empty,
                        value: &Shape::OneOf(&[
                            Shape::Scalar(STR | NUM | BOOL),
                            Shape::List(&Shape::Scalar(STR | NUM | BOOL), false),
                        ]),
                        others: None,
                    },
                ),
            ],
            required: &["type"],
            x: true,
        }),
    ),
    ("external_links", STRING_SET),
    ("extra_hosts", EXTRA_HOSTS),
    (
        "gpus",
        Shape::OneOf(&[
            Shape::Enum(&["all"]),
            Shape::List(
                &Shape::Map(&Fields {
                    keys: DEVICE_REQUEST,
                    required: &[],
                    x: true,
                }),
                false,
            ),
        ]),
    ),
    ("group_add", Shape::List(&S_N, true)),
    ("healthcheck", HEALTHCHECK),
    ("hostname", S),
    ("image", S),
    ("init", S_B),
    ("ipc", S),
    ("isolation", S),
    ("labels", LIST_OR_DICT),
    ("links", STRING_SET),
    (
        "logging",
        Shape::Map(&fields(&[
            ("driver", S),
            (
                "options",
                Shape::Dict {
                    names: non_empty,
                    value: &Shape::Scalar(STR | NUM | NULL),
                    others: None,
                },
            ),
        ])),
    ),
    ("mac_address", S),
    ("mem_limit", S_N),
    ("mem_reservation", S_I),
    ("mem_swappiness", S_I),
    ("memswap_limit", S_N),
    ("network_mode", S),
    (
        "models",
        Shape::OneOf(&[
            STRING_SET,
            Shape::Dict {
                names: object_name,
                value: &Shape::MapOrNull(&fields(&[("endpoint_var", S), ("model_var", S)])),
                others: Some(&Shape::Any),
            },
        ]),
    ),
    (
        "networks",
        Shape::OneOf(&[
            STRING_SET,
            Shape::Dict {
                names: object_name,
                value: &SERVICE_NETWORK,
                others: None,
            },
        ]),
    ),
    ("oom_kill_disable", S_B),
    (
        "oom_score_adj",
        Shape::OneOf(&[S, Shape::Range(-1000, 1000)]),
    ),
    ("pid", Shape::Scalar(STR | NULL)),
    ("pids_limit", S_N),
    ("platform", S),
    (
        "ports",
        Shape::List(
            &Shape::OneOf(&[
                Shape::Scalar(NUM | STR),
                Shape::Map(&fields(&[
                    ("name", S),
                    ("mode", S),
                    ("host_ip", S),
                    ("target", S_I),
                    ("published", S_I),
                    ("protocol", S),
                    ("app_protocol", S),
                ])),
            ]),
            true,
        ),
    ),
    ("pre_start", Shape::List(&PRE_START_HOOK, false)),
    ("post_start", Shape::List(&HOOK, false)),
    ("pre_stop", Shape::List(&HOOK, false)),
    ("privileged", S_B),
    ("profiles", STRING_SET),
    (
        "pull_policy",
        Shape::Pattern(
            pull_policy,
            "always, never, build, missing, daily, every_12h, ...",
        ),
    ),
    ("pull_refresh_after", S),
    ("read_only", S_B),
    ("restart", S),
    ("runtime", S),
    ("scale", S_I),
    ("security_opt", STRING_SET),
    ("shm_size", S_N),
    ("secrets", CONFIG_OR_SECRET),
    ("sysctls", LIST_OR_DICT),
    ("stdin_open", S_B),
    ("stop_grace_period", S),
    ("stop_signal", S),
    (
        "storage_opt",
        Shape::Dict {
            names: non_empty,
            value: &Shape::Any,
            others: None,
        },
    ),
    ("tmpfs", STRING_OR_LIST),
    ("tty", S_B),
    ("ulimits", ULIMITS),
    ("use_api_socket", B),
    ("user", S),
    ("uts", S),
    ("userns_mode", S),
    (
        "volumes",
        Shape::List(
            &Shape::OneOf(&[
                S,
                Shape::Map(&Fields {
                    keys: &[
                        (
                            "type",
                            Shape::Enum(&["bind", "volume", "tmpfs", "cluster", "npipe", "image"]),
                        ),
                        ("source", S),
                        ("target", S),
                        ("read_only", S_B),
                        ("consistency", S),
                        (
                            "bind",
                            Shape::Map(&fields(&[
                                ("propagation", S),
                                ("create_host_path", S_B),
                                (
                                    "recursive",
                                    Shape::Enum(&["enabled", "disabled", "writable", "readonly"]),
                                ),
                                ("selinux", Shape::Enum(&["z", "Z"])),
                            ])),
                        ),
                        (
                            "volume",
                            Shape::Map(&fields(&[
                                ("labels", LIST_OR_DICT),
                                ("nocopy", S_B),
                                ("subpath", S),
                            ])),
                        ),
                        (
                            "tmpfs",
                            Shape::Map(&fields(&[
                                ("size", Shape::OneOf(&[S, Shape::Range(0, i64::MAX)])),
                                ("mode", S_N),
                            ])),
                        ),
                        ("image", Shape::Map(&fields(&[("subpath", S)]))),
                    ],
                    required: &["type"],
                    x: true,
                }),
            ]),
            true,
        ),
    ),
    ("volumes_from", STRING_SET),
    ("working_dir", S),
]);

/// `^[a-zA-Z0-9._-]+$`: the names of services, networks, volumes, secrets and configs.
fn object_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn non_empty(name: &str) -> bool {
    !name.is_empty()
}

fn lower(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase())
}

/// The schema's unanchored `[a-zA-Z0-9][a-zA-Z0-9_.-]+`: somewhere, a letter or digit
/// followed by at least one more name character.
fn container_name(name: &str) -> bool {
    let b = name.as_bytes();
    let rest = |c: u8| c.is_ascii_alphanumeric() || b"_.-".contains(&c);
    b.windows(2)
        .any(|w| w[0].is_ascii_alphanumeric() && rest(w[1]))
}

/// The schema's unanchored pull policy pattern.
fn pull_policy(policy: &str) -> bool {
    const WORDS: &[&str] = &[
        "always",
        "never",
        "build",
        "if_not_present",
        "missing",
        "refresh",
        "daily",
        "weekly",
    ];
    if WORDS.iter().any(|w| policy.contains(w)) {
        return true;
    }
    // every_([0-9]+[wdhms])+
    policy.match_indices("every_").any(|(at, _)| {
        let rest = &policy.as_bytes()[at + 6..];
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        digits > 0 && rest.get(digits).is_some_and(|c| b"wdhms".contains(c))
    })
}

// === the check ===

/// Whether `name` is a top-level key of the specification.
pub(crate) fn is_top_key(name: &str) -> bool {
    TOP.keys.iter().any(|(k, _)| *k == name)
}

/// Checks one file's tree against the specification, adding every mismatch to `errors`.
pub(crate) fn check(root: &Node, errors: &mut Vec<SpecError>) {
    let mut keys = Vec::new();
    non_string_keys(root, "", &mut keys);
    if !keys.is_empty() {
        // A tree with such keys has no JSON form, so Compose stops here.
        errors.append(&mut keys);
        return;
    }
    if root.is_null() {
        return;
    }
    fields_of(&TOP, root, "", errors);
}

/// Keys that YAML types as something other than a string (`123:`, `true:`, `null:`).
fn non_string_keys(node: &Node, path: &str, errors: &mut Vec<SpecError>) {
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                if let Some(found) = non_string(k) {
                    errors.push(
                        SpecError::new(
                            k.mark.clone(),
                            path,
                            format!("a key must be a string, found {found} `{}`", k.name),
                        )
                        .hint(format!("quote it: \"{}\"", k.name)),
                    );
                }
                non_string_keys(v, &join(path, &k.name), errors);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                non_string_keys(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Scalar { .. } => {}
    }
}

fn non_string(key: &Key) -> Option<&'static str> {
    match key.scalar {
        Scalar::Str => None,
        other => Some(other.name()),
    }
}

fn check_node(shape: &Shape, node: &Node, path: &str, errors: &mut Vec<SpecError>) {
    // `!reset` and `!override` values are the merge step's business.
    if node.tag.as_deref().is_some_and(|t| t == "reset") {
        return;
    }
    match shape {
        Shape::Any => {}
        Shape::Scalar(types) => {
            if !fits_scalar(*types, node) {
                errors.push(mismatch(shape, node, path));
            }
        }
        Shape::Enum(words) => match string_of(node) {
            Some(text) if words.contains(&text) => {}
            Some(text) => {
                let mut e = SpecError::new(
                    node.mark.clone(),
                    path,
                    format!("`{text}` is not one of: {}", words.join(", ")),
                );
                if let Some(best) = closest(text, words) {
                    e = e.hint(format!("did you mean `{best}`?"));
                }
                errors.push(e);
            }
            None => errors.push(mismatch(shape, node, path)),
        },
        Shape::Pattern(ok, what) => match string_of(node) {
            Some(text) if ok(text) => {}
            Some(text) => errors.push(SpecError::new(
                node.mark.clone(),
                path,
                format!("`{text}` is not {what}"),
            )),
            None => errors.push(mismatch(shape, node, path)),
        },
        Shape::Range(min, max) => {
            let n = match (&node.value, node_scalar(node)) {
                (Value::Scalar { text, .. }, Some(Scalar::Int)) => parse_int(text),
                _ => None,
            };
            match n {
                Some(n) if (*min..=*max).contains(&n) => {}
                Some(n) => errors.push(SpecError::new(
                    node.mark.clone(),
                    path,
                    if *max == i64::MAX {
                        format!("{n} is below the least allowed, {min}")
                    } else {
                        format!("{n} is out of range {min}..={max}")
                    },
                )),
                None => errors.push(mismatch(shape, node, path)),
            }
        }
        Shape::List(item, unique) => {
            let Some(items) = node.as_seq() else {
                errors.push(mismatch(shape, node, path));
                return;
            };
            let mut seen: Vec<serde_json::Value> = Vec::new();
            for (i, n) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                check_node(item, n, &p, errors);
                if *unique {
                    let json = n.to_json();
                    if seen.contains(&json) {
                        errors.push(
                            SpecError::new(n.mark.clone(), p, "this item is listed twice")
                                .hint("remove the repeated item"),
                        );
                    } else {
                        seen.push(json);
                    }
                }
            }
        }
        Shape::Map(f) => {
            if node.as_map().is_some() {
                fields_of(f, node, path, errors);
            } else {
                errors.push(mismatch(shape, node, path));
            }
        }
        Shape::MapOrNull(f) => {
            if node.as_map().is_some() {
                fields_of(f, node, path, errors);
            } else if !node.is_null() {
                errors.push(mismatch(shape, node, path));
            }
        }
        Shape::Dict {
            names,
            value,
            others,
        } => {
            let Some(entries) = node.as_map() else {
                errors.push(mismatch(shape, node, path));
                return;
            };
            for (k, v) in entries {
                let p = join(path, &k.name);
                if names(&k.name) {
                    check_node(value, v, &p, errors);
                } else if let Some(others) = others {
                    check_node(others, v, &p, errors);
                } else {
                    errors.push(
                        SpecError::new(
                            k.mark.clone(),
                            path,
                            format!("`{}` is not a valid name here", k.name),
                        )
                        .hint("names are letters, digits, `.`, `_` and `-`"),
                    );
                }
            }
        }
        Shape::OneOf(choices) => match choices.iter().find(|c| fits_kind(c, node)) {
            Some(choice) => check_node(choice, node, path, errors),
            None => errors.push(mismatch(shape, node, path)),
        },
    }
}

fn fields_of(f: &Fields, node: &Node, path: &str, errors: &mut Vec<SpecError>) {
    let Some(entries) = node.as_map() else {
        return;
    };
    for (k, v) in entries {
        if let Some((_, shape)) = f.keys.iter().find(|(name, _)| *name == k.name) {
            check_node(shape, v, &join(path, &k.name), errors);
        } else if !(f.x && k.name.starts_with("x-")) {
            let names: Vec<&str> = f.keys.iter().map(|(n, _)| *n).collect();
            let mut e = SpecError::new(k.mark.clone(), path, format!("unknown key `{}`", k.name));
            e = match closest(&k.name, &names) {
                Some(best) => e.hint(format!("did you mean `{best}`?")),
                None => e.hint(format!("allowed here: {}", names.join(", "))),
            };
            errors.push(e);
        }
    }
    for required in f.required {
        if !entries.iter().any(|(k, _)| k.name == *required) {
            errors.push(
                SpecError::new(
                    node.mark.clone(),
                    path,
                    format!("`{required}` is required here"),
                )
                .hint(format!("add `{required}:`")),
            );
        }
    }
}

/// Whether the node is of the kind the shape takes at its top (a scalar of a fitting
/// type, a sequence, a mapping), without looking inside.
fn fits_kind(shape: &Shape, node: &Node) -> bool {
    match shape {
        Shape::Any => true,
        Shape::Scalar(types) => fits_scalar(*types, node),
        Shape::Enum(_) | Shape::Pattern(..) => string_of(node).is_some(),
        Shape::Range(..) => node_scalar(node) == Some(Scalar::Int),
        Shape::List(..) => node.as_seq().is_some(),
        Shape::Map(_) | Shape::Dict { .. } => node.as_map().is_some(),
        Shape::MapOrNull(_) => node.as_map().is_some() || node.is_null(),
        Shape::OneOf(choices) => choices.iter().any(|c| fits_kind(c, node)),
    }
}

fn fits_scalar(types: Types, node: &Node) -> bool {
    let bit = match node_scalar(node) {
        None => return false,
        Some(Scalar::Str) => STR,
        Some(Scalar::Int) => INT,
        Some(Scalar::Float) => NUM & !INT,
        Some(Scalar::Bool) => BOOL,
        Some(Scalar::Null) => NULL,
    };
    types & bit != 0
}

fn node_scalar(node: &Node) -> Option<Scalar> {
    match &node.value {
        Value::Scalar { text, quoted } => Some(Scalar::of(text, *quoted)),
        _ => None,
    }
}

fn string_of(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar { text, quoted } if Scalar::of(text, *quoted) == Scalar::Str => Some(text),
        _ => None,
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let n = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

/// "expected a string or a list of strings, found an integer", with a hint to quote a
/// plain scalar where a string would do.
fn mismatch(shape: &Shape, node: &Node, path: &str) -> SpecError {
    let found = match node_scalar(node) {
        Some(s) => s.name(),
        None if node.as_seq().is_some() => "a sequence",
        None => "a mapping",
    };
    let e = SpecError::new(
        node.mark.clone(),
        path,
        format!("expected {}, found {found}", describe(shape)),
    );
    let string_would_do =
        matches!(node_scalar(node), Some(s) if s != Scalar::Str) && fits_kind_as_string(shape);
    if string_would_do {
        let text = node.as_str().unwrap_or_default();
        e.hint(format!("quote it to make it a string: \"{text}\""))
    } else {
        e
    }
}

fn fits_kind_as_string(shape: &Shape) -> bool {
    match shape {
        Shape::Scalar(types) => types & STR != 0,
        Shape::Pattern(..) => true,
        Shape::OneOf(choices) => choices.iter().any(fits_kind_as_string),
        _ => false,
    }
}

fn describe(shape: &Shape) -> String {
    match shape {
        Shape::Any => "anything".into(),
        Shape::Scalar(types) => {
            let mut names = Vec::new();
            if types & STR != 0 {
                names.push("a string");
            }
            if types & NUM == NUM {
                names.push("a number");
            } else if types & INT != 0 {
                names.push("an integer");
            }
            if types & BOOL != 0 {
                names.push("true or false");
            }
            if types & NULL != 0 {
                names.push("null");
            }
            names.join(" or ")
        }
        Shape::Enum(words) => format!("one of: {}", words.join(", ")),
        Shape::Pattern(_, what) => (*what).to_string(),
        Shape::Range(..) => "an integer".into(),
        Shape::List(Shape::Scalar(STR), _) => "a list of strings".into(),
        Shape::List(..) => "a list".into(),
        Shape::Map(_) | Shape::Dict { .. } => "a mapping".into(),
        Shape::MapOrNull(_) => "a mapping or null".into(),
        Shape::OneOf(choices) => choices
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join(" or "),
    }
}
