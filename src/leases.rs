//! The MAC -> IP lease table. (Skeleton: filled by the DHCP issue.)
