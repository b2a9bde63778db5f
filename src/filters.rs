//! `[filters]` name rewriting. (Skeleton: filled by the TFTP issue.)
