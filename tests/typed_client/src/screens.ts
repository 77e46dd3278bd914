// The villager's screens of the mini-program, reduced to what they read from the API. Each
// reads the fields a screen shows directly (no `?.`, no `!`, no casts): a field that loses
// `required`, becomes nullable or drops its enum no longer compiles under `tsc --strict`.
import { ApiFailure, get, post, type Ok, type Schemas, type Session } from "./api";

/** A label for each member of a closed set: compiles only if T is a union of literals (an
 * `enum` in the document), not `string`, and every member has its label. */
function labels<T extends string>(
  names: string extends T ? never : Record<T, string>,
): (value: T) => string {
  const table: Record<T, string> = names;
  return (value) => table[value];
}

// ---- login -----------------------------------------------------------------------------------

export async function loginWithWeChat(base: string, code: string): Promise<Session> {
  const session: Session = { base, token: null };
  const tokens = await post(session, "/api/v1/auth/wechat", { code });
  const expiresInMinutes: number = Math.floor(tokens.expires_in / 60);
  const refresh: string = tokens.refresh_token;
  const mustBind: boolean = !tokens.bound;
  const role: Schemas["UserOut"]["role"] = tokens.user.role;
  console.log(expiresInMinutes, refresh.length, mustBind, role);
  return { base, token: tokens.access_token };
}

export function explain(error: unknown): string {
  if (!(error instanceof ApiFailure)) return "网络错误";
  const { code, message } = error.body.error;
  switch (code) {
    case "token_expired":
    case "token_revoked":
    case "token_reused":
      return "请重新登录";
    case "rate_limited":
      return `${message}（${error.retryAfter ?? 1} 秒后再试）`;
    default:
      return message;
  }
}

// ---- me and the home screen ------------------------------------------------------------------

const roleName = labels<Ok<"/api/v1/me", "get">["role"]>({
  county_admin: "县管理员",
  township_admin: "乡镇管理员",
  cadre: "村干部",
  clerk: "超市店员",
  villager: "村民",
});

export async function home(session: Session): Promise<string[]> {
  const me = await get(session, "/api/v1/me");
  const lines = [roleName(me.role), `用户 ${me.user.id}`];
  if (me.villager !== null) {
    lines.push(`${me.villager.name}（${me.villager.relation}）`);
  }
  if (me.household !== null) {
    const head = me.household.head;
    lines.push(`户主：${head === null ? "未登记" : head.name}`);
    lines.push(`家庭成员 ${me.household.members.length} 人`);
  }
  const scopeVillage: number | null = me.scope.village_id;
  const account = await get(session, "/api/v1/me/account");
  lines.push(`可用积分 ${account.available.toFixed(0)}`);
  lines.push(`冻结 ${account.held}，本月 ${account.this_month}，累计 ${account.earned_total}`);
  const activities = await get(session, "/api/v1/activities", { status: "current" });
  for (const activity of activities.items) {
    lines.push(`${activity.title} ${activityState(activity.status)} ${activity.starts_at}`);
    lines.push(`${activity.rule_item.name ?? ""} ${qrMode(activity.qr_mode)}`);
    if (activity.location !== null) {
      lines.push(`${geofence(activity.location.mode)} ${activity.location.radius_m} 米`);
    }
    if (activity.my_checkin_id !== null) lines.push(`已签到 #${activity.my_checkin_id}`);
  }
  if (scopeVillage !== null) {
    const notices = await get(session, "/api/v1/villages/{village_id}/notices", undefined,
      `/api/v1/villages/${scopeVillage}/notices`);
    lines.push(`公示中 ${notices.total} 条`);
  }
  return lines;
}

const activityState = labels<Schemas["ActivityOut"]["status"]>({
  upcoming: "未开始",
  open: "签到中",
  closed: "已结束",
  cancelled: "已取消",
});
const qrMode = labels<Schemas["ActivityOut"]["qr_mode"]>({
  static: "固定码",
  rotating: "动态码",
});
const geofence = labels<Schemas["LocationOut"]["mode"]>({
  refuse: "范围外不能签到",
  flag: "范围外标记",
});

// ---- check-in --------------------------------------------------------------------------------

const checkinFlag = labels<Schemas["CheckinOut"]["flags"][number]>({
  out_of_area: "不在活动范围内",
  no_location: "未提供位置",
  own_household: "代签本户",
  shared_device: "同一设备",
  proxy_burst: "短时间大量代签",
});

export async function checkIn(session: Session, scanned: string, lat: number, lng: number):
    Promise<string> {
  const result = await post(session, "/api/v1/checkins", { token: scanned, lat, lng });
  const flags = result.flags.map(checkinFlag).join("、");
  const distance = result.distance_m === null ? "" : `，距离 ${result.distance_m} 米`;
  switch (result.status) {
    case "checked_in":
      return `已签到，签退后计分${distance}`;
    case "no_points":
      return `已签到：${result.reason ?? ""}`;
    default:
      return `已签到，${claimStatus(result.status)} ${result.points} 分 ${result.checked_in_at}${distance} ${flags}`;
  }
}

// ---- the passbook (积分存折) -------------------------------------------------------------------

const entryKind = labels<Schemas["LedgerEntryOut"]["kind"]>({
  earn: "加分",
  deduct: "扣分",
  redeem: "兑换",
  reverse: "冲正",
  adjust: "调整",
  expire: "清零",
});

export async function passbook(session: Session, month: string): Promise<string[]> {
  const page = await get(session, "/api/v1/me/ledger", { month, page: 1, per_page: 20 });
  const lines = [`共 ${page.total} 条，第 ${page.page} 页`];
  for (const entry of page.items) {
    const who = entry.member_name === null ? "全户" : entry.member_name;
    const item = entry.rule_item_name ?? entry.note ?? "";
    lines.push(`${entry.created_at} ${entryKind(entry.kind)} ${entry.amount > 0 ? "+" : ""}${entry.amount} ${who} ${item} ${entry.month}`);
    const deed = entry.deed_date === null ? "" : `（${entry.deed_date} 的事）`;
    const by = entry.created_by_name ?? "系统";
    lines.push(`  余额 ${entry.balance}，${by} 记${deed} ${entry.approved_by_names.join("、")}`);
  }
  return lines;
}

// ---- the home screen in one call -------------------------------------------------------------

const attentionKind = labels<Schemas["AttentionOut"]["kind"]>({
  objection: "有人提出异议",
  rejected: "申报未通过",
  order_expiring: "订单即将过期",
});

export async function homeScreen(session: Session): Promise<string[]> {
  const home = await get(session, "/api/v1/me/home");
  const { points, month, stars, qualification } = home;
  const lines = [`${home.village_name} ${home.household_name ?? ""} ${home.villager_name ?? ""}`];
  lines.push(`可用 ${points.available}，冻结 ${points.held}，公示中 ${points.in_notice}（${points.in_notice_count} 条）`);
  const rank = month.rank === null ? "暂不排名" : `第 ${month.rank} / ${month.households} 名`;
  lines.push(`${month.label} ${month.points} 分，${rank}${month.barred ? "（一票否决）" : ""}`);
  lines.push(`${stars.year} 年 ${"★".repeat(stars.stars)}（${stars.points} 分，分档 ${stars.levels.join("/")}）`);
  lines.push(qualification.qualified
    ? `已达兑换资格（近 ${qualification.months} 个月 ${qualification.score} 分）`
    : `距兑换资格还差 ${qualification.gap} 分（合格线 ${qualification.line}）`);
  for (const item of home.attention) {
    const until = item.expires_at === null ? "" : ` 截止 ${item.expires_at}`;
    lines.push(`${attentionKind(item.kind)} ${item.title ?? ""} ${item.points ?? ""} ${item.reason ?? ""} ${item.at}${until}`);
  }
  return lines;
}

// ---- notices (公示) and objections ------------------------------------------------------------

const claimStatus = labels<Schemas["ClaimOut"]["status"]>({
  pending: "待审核",
  approved: "已审核",
  in_notice: "公示中",
  objected: "有异议",
  posted: "已入账",
  rejected: "未通过",
  withdrawn: "已撤销",
});
const claimSource = labels<Schemas["ClaimOut"]["source"]>({
  villager: "自主申报",
  cadre: "干部录入",
  checkin: "活动签到",
});
const objectionStatus = labels<Schemas["ObjectionOut"]["status"]>({
  open: "处理中",
  upheld: "异议成立",
  overturned: "异议不成立",
});

export async function notices(session: Session, villageId: number): Promise<string[]> {
  const list = await get(session, "/api/v1/villages/{village_id}/notices", undefined,
    `/api/v1/villages/${villageId}/notices`);
  return list.items.map((notice) =>
    `${notice.household_name ?? "（不公开）"} ${notice.rule_item ?? ""} ${notice.points} 分 ` +
    `${claimStatus(notice.status)} 截止 ${notice.notice_ends_at}` +
    `${notice.can_object ? "（可提出异议）" : ""} 异议 ${notice.objection_count} 条`);
}

export async function myClaim(session: Session, claimId: number): Promise<string> {
  const claim = await get(session, "/api/v1/claims/{claim_id}", undefined,
    `/api/v1/claims/${claimId}`);
  const objections = claim.objections.map((o) => `${objectionStatus(o.status)} ${o.reason}`);
  return `${claimSource(claim.source)} ${claim.rule_item.id} ${claimStatus(claim.status)} ` +
    `${claim.points} ${claim.evidence.length} ${objections.join("；")}` +
    `${claim.notice_ends_at === null ? "" : claim.notice_ends_at}`;
}

export async function object(session: Session, claimId: number, reason: string):
    Promise<string> {
  try {
    const objection = await post(session, "/api/v1/claims/{claim_id}/objections", { reason },
      `/api/v1/claims/${claimId}/objections`);
    return `异议已提交（${objectionStatus(objection.status)}，${objection.created_at}）`;
  } catch (error) {
    if (error instanceof ApiFailure && error.body.error.code === "own_claim") {
      return "不能对自家的申报提出异议";
    }
    return explain(error);
  }
}

// ---- the points supermarket ------------------------------------------------------------------

const redemptionStatus = labels<Schemas["RedemptionOut"]["status"]>({
  reserved: "待领取",
  fulfilled: "已领取",
  cancelled: "已取消",
  expired: "已过期",
});

export async function rewards(session: Session, shopId: number): Promise<string[]> {
  const page = await get(session, "/api/v1/shops/{shop_id}/rewards", undefined,
    `/api/v1/shops/${shopId}/rewards`);
  return page.items.map((reward) =>
    `${reward.name} ${reward.points} 分 库存 ${reward.stock}${reward.active ? "" : "（下架）"}` +
    `${reward.image_url === null ? "" : " 🖼"}`);
}

export async function order(session: Session, shopId: number, rewardId: number):
    Promise<string> {
  const redemption = await post(session, "/api/v1/redemptions", {
    shop_id: shopId, items: [{ reward_id: rewardId, quantity: 1 }],
  });
  const lines = redemption.lines.map((l) => `${l.name} × ${l.quantity} = ${l.points}`);
  const cash: string = redemption.cash_paid;
  const pickup = redemption.pickup_url === null ? "" : redemption.pickup_url;
  return `${redemptionStatus(redemption.status)} ${redemption.shop_name} ` +
    `${redemption.total_points} 分 ${cash} 元 ${lines.join("，")} ${pickup} ` +
    `${redemption.expires_at ?? ""}`;
}

// ---- rankings --------------------------------------------------------------------------------

const rankedBy = labels<Ok<"/api/v1/rankings", "get">["by"]>({
  household: "按户",
  member: "按人",
});

export async function rankings(session: Session): Promise<string[]> {
  const ranking = await get(session, "/api/v1/rankings", { by: "household" });
  const lines = [`${ranking.period} ${rankedBy(ranking.by)} 共 ${ranking.total}`, ranking.tie_rule];
  for (const row of ranking.items) lines.push(`${row.rank}. ${row.name} ${row.points}`);
  if (ranking.mine !== null) {
    lines.push(`我家第 ${ranking.mine.rank} 名 ${ranking.mine.points} 分` +
      `${ranking.mine.barred ? "（取消评优）" : ""}`);
  }
  return lines;
}
