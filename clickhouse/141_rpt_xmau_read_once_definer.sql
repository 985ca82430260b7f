-- server-only
-- 140 replaced rpt_xmau_self_managed_monthly; a replaced view runs as the default again, so it runs as its definer
-- once more (as 121 set it). Its grants are kept: they name the view.
ALTER TABLE rpt_xmau_self_managed_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
