"""Demo values for the local stack: staff directory, secrets, and tokens for each demo role."""

from __future__ import annotations

import json
import time

import jwt

from chalicelib.ports import StaffRecord

DEMO_STAFF = (
    StaffRecord("agent1", "李娜 Li Na", ["agent"], team="agents", regions=["east"], skills=["orders"], online=True),
    StaffRecord(
        "agent2", "王伟 Wang Wei", ["agent"], team="agents", regions=["north"], skills=["members"], online=True
    ),
    StaffRecord("senior1", "张敏 Zhang Min", ["senior_agent"], team="vip", skills=["vip"], online=True),
    StaffRecord("supervisor1", "刘洋 Liu Yang", ["supervisor"], team="agents", online=True),
    StaffRecord("manager1", "陈静 Chen Jing", ["manager"], team="management", online=True),
    StaffRecord("duty1", "杨帆 Yang Fan", ["duty_manager"], team="management", online=True),
    StaffRecord("aftersales1", "赵磊 Zhao Lei", ["after_sales"], team="after_sales", online=True),
    StaffRecord("engineer1", "黄强 Huang Qiang", ["engineer"], team="field", regions=["east"], online=True),
    StaffRecord("ops1", "周婷 Zhou Ting", ["product_ops"], team="product_ops", online=True),
    StaffRecord("qa1", "吴芳 Wu Fang", ["qa"], team="qa", online=True),
    StaffRecord("admin1", "孙杰 Sun Jie", ["admin"], team="admin", online=True),
)

GENERIC_SOURCES = ("app", "miniprogram", "webchat", "store", "kiosk", "ivr", "douyin", "tmall", "jd", "social")

DEMO_ENV = {
    "KEFU_TIMEZONE": "Asia/Shanghai",
    "KEFU_PUBLIC_BASE_URL": "http://127.0.0.1:8000",
    "KEFU_AUTH_MODE": "local",
    "KEFU_LOCAL_JWT_SECRET": "demo-local-jwt-secret-change-me-in-prod",
    "KEFU_WEBHOOK_SECRETS": json.dumps({s: f"demo-secret-{s}" for s in GENERIC_SOURCES}),
    "WECHAT_TOKEN": "demo-wechat-token",
    "WECHAT_APP_ID": "wxdemo0000000000",
    "WECHAT_ENCODING_AES_KEY": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
    "TWILIO_AUTH_TOKEN": "demo-twilio-auth-token",
}


def staff_token(secret: str, staff: StaffRecord, hours: int = 12) -> str:
    """An HS256 token with the Cognito ID-token claims kefu reads (sub, cognito:groups, exp)."""
    now = int(time.time())
    claims = {"sub": staff.id, "cognito:groups": list(staff.roles), "iat": now, "exp": now + hours * 3600}
    return jwt.encode(claims, secret, algorithm="HS256")
