-- rpt_ping_metric_first_last_versions: the first and the last version (major.minor) in which each metric was
-- reported, per edition and pre-release flag (reference section 2.13: "used to determine the version in which a
-- metric was introduced"; CE and EE can differ). Feeds the "metric/version check" estimate: a subscription on a
-- version inside [first, last] counts as able to report the metric.
-- Grain: one row per metrics_path x ping_edition x version_is_prerelease.
-- Every ping that carried the path counts, error markers included (the metric exists in that version even when
-- it timed out), as in the reference (its fact keeps -1 rows). Only dictionary metrics (is_defined = 1, the
-- reference's INNER join to dim_ping_metric). Only released versions count when dim_app_release lists any (the
-- reference's INNER join to dim_gitlab_releases drops unreleased builds); with an empty release table every version
-- counts.
-- Plain view over FINAL tables: exact before merges.
-- Class: public (version ranges and installation counts, no installation named).
CREATE VIEW IF NOT EXISTS rpt_ping_metric_first_last_versions
(
    metrics_path                              String COMMENT 'dotted payload path of the metric',
    ping_edition                              LowCardinality(String) COMMENT 'CE or EE',
    version_is_prerelease                     UInt8 COMMENT '1 for pre-release builds',
    first_major_minor_version_id_with_counter UInt32 COMMENT 'lowest major * 100 + minor that reported the metric',
    first_major_minor_version_with_counter    String COMMENT 'that version as major.minor',
    first_major_version_with_counter          UInt16 COMMENT 'its major part',
    first_minor_version_with_counter          UInt16 COMMENT 'its minor part',
    last_major_minor_version_id_with_counter  UInt32 COMMENT 'highest major * 100 + minor that reported the metric',
    last_major_minor_version_with_counter     String COMMENT 'that version as major.minor',
    last_major_version_with_counter           UInt16 COMMENT 'its major part',
    last_minor_version_with_counter           UInt16 COMMENT 'its minor part',
    dim_installation_count                    UInt64 COMMENT 'distinct installations that reported the metric'
)
AS SELECT
    m.metrics_path AS metrics_path,
    p.ping_edition AS ping_edition,
    p.version_is_prerelease AS version_is_prerelease,
    min(p.major_minor_version_id) AS first_major_minor_version_id_with_counter,
    concat(toString(intDiv(first_major_minor_version_id_with_counter, 100)), '.',
           toString(first_major_minor_version_id_with_counter % 100)) AS first_major_minor_version_with_counter,
    toUInt16(intDiv(first_major_minor_version_id_with_counter, 100)) AS first_major_version_with_counter,
    toUInt16(first_major_minor_version_id_with_counter % 100) AS first_minor_version_with_counter,
    max(p.major_minor_version_id) AS last_major_minor_version_id_with_counter,
    concat(toString(intDiv(last_major_minor_version_id_with_counter, 100)), '.',
           toString(last_major_minor_version_id_with_counter % 100)) AS last_major_minor_version_with_counter,
    toUInt16(intDiv(last_major_minor_version_id_with_counter, 100)) AS last_major_version_with_counter,
    toUInt16(last_major_minor_version_id_with_counter % 100) AS last_minor_version_with_counter,
    uniqExact(m.installation_id) AS dim_installation_count
FROM fct_ping_instance_metric AS m FINAL
INNER JOIN
(
    SELECT ping_id, ping_edition, version_is_prerelease, major_minor_version_id FROM dim_ping_instance
) AS p ON m.ping_id = p.ping_id
WHERE m.is_defined = 1
  AND ((SELECT count() FROM dim_app_release) = 0
       OR p.major_minor_version_id IN (SELECT toUInt32(major) * 100 + minor FROM dim_app_release FINAL))
GROUP BY metrics_path, ping_edition, version_is_prerelease
COMMENT 'Public. Grain: one row per metrics_path x ping_edition x version_is_prerelease. Lowest and highest major.minor version whose pings carried the metric (released versions only when dim_app_release lists any). The window of the metric/version check estimate.';
